package cli

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/internal/web"
)

// serverTLS returns the listener's TLS configuration, or nil for plain
// HTTP: --tls-cert/--tls-key; else a self-signed certificate with
// --tls-self-signed (on by default with --dev for `kura serve`).
func (f *serveFlags) serverTLS(cmd *cobra.Command, log *slog.Logger) (*tls.Config, error) {
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	if f.tlsCert != "" {
		cert, err := loadTLSFlags(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, err
		}
		if leaf := cert.Leaf; leaf != nil {
			log.Info("TLS certificate loaded", "path", f.tlsCert, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter, "sha256", certFingerprint(leaf.Raw))
			if time.Now().After(leaf.NotAfter) {
				return nil, fmt.Errorf("--tls-cert %s expired at %s: renew it", f.tlsCert, leaf.NotAfter.Format(time.RFC3339))
			}
		}
		return serverTLSConfig(cert), nil
	}
	selfSigned := f.selfSigned
	if fl := cmd.Flags().Lookup("tls-self-signed"); fl != nil && !fl.Changed && f.dev && f.platform() {
		selfSigned = true
	}
	if !selfSigned {
		return nil, nil
	}
	certPath, keyPath := filepath.Join(f.data, "tls", "dev-cert.pem"), filepath.Join(f.data, "tls", "dev-key.pem")
	cert, created, err := loadOrCreateSelfSigned(certPath, keyPath, time.Now())
	if err != nil {
		return nil, err
	}
	verb := "reusing"
	if created {
		verb = "created"
	}
	log.Warn(verb+" self-signed TLS certificate (pin it with --ca)", "path", certPath, "sha256", certFingerprint(cert.Leaf.Raw), "not_after", cert.Leaf.NotAfter)
	fmt.Fprintf(cmd.OutOrStdout(), "tls certificate %s sha256:%s\n", certPath, certFingerprint(cert.Leaf.Raw))
	return serverTLSConfig(cert), nil
}

// serverTLSConfig is the TLS configuration of every kura listener (kura
// serve, the single-role servers, the witness): TLS 1.2 or 1.3, and on TLS
// 1.2 only ECDHE with an AEAD (AES-GCM or ChaCha20-Poly1305): no CBC suite
// (padding oracles, Lucky13), no RSA key exchange (no forward secrecy). TLS
// 1.3's suites are all AEAD and not configurable.
func serverTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

func certFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// loadOrCreateSelfSigned reuses the certificate at certPath while it is
// valid for another day, and otherwise creates one: ECDSA P-256, for
// 127.0.0.1, ::1 and localhost, valid for a year. A key file that group or
// others can reach is refused, not replaced: its key may have leaked.
func loadOrCreateSelfSigned(certPath, keyPath string, now time.Time) (tls.Certificate, bool, error) {
	cert, err := loadKeyPair(certPath, keyPath)
	if errors.Is(err, keyfile.ErrInsecure) {
		return tls.Certificate{}, false, fmt.Errorf("self-signed TLS key: %w", err)
	}
	if err == nil && cert.Leaf != nil && now.Add(24*time.Hour).Before(cert.Leaf.NotAfter) {
		return cert, false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, false, fmt.Errorf("self-signed TLS certificate %s: %w (remove it and %s to create a new one)", certPath, err, keyPath)
	}
	der, key, err := web.SelfSigned("kura dev server (self-signed)", now, 365*24*time.Hour)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("create self-signed certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := writeSecretFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("write TLS key: %w", err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("write TLS certificate: %w", err)
	}
	cert, err = loadKeyPair(certPath, keyPath)
	return cert, true, err
}

// listen opens addr and refuses plain HTTP on an address other clients can
// reach, unless --insecure-http.
func (f *serveFlags) listen(addr, flag string, tlsCfg *tls.Config) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", flag, addr, err)
	}
	if tlsCfg != nil || f.insecureHTTP {
		return l, nil
	}
	if a, ok := l.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		return l, nil
	}
	l.Close()
	return nil, usagef("%s %s is not a loopback address and no TLS is configured: give --tls-cert and --tls-key (or --dev for a self-signed certificate), listen on 127.0.0.1, or pass --insecure-http if a TLS-terminating proxy fronts kura on a trusted network", flag, addr)
}
