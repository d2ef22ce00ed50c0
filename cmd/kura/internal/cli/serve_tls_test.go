package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestTLSCipherSuites: kura serve's and the witness's listeners speak TLS
// 1.3, and TLS 1.2 only with ECDHE and an AEAD: a client offering only CBC
// suites is refused.
func TestTLSCipherSuites(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	witnessKey, logKey := filepath.Join(dir, "witness.key"), filepath.Join(dir, "log.key")
	mustRun(t, "audit", "keygen", "--origin", "witness.test", "-o", witnessKey)
	mustRun(t, "audit", "keygen", "--origin", "log.test", "-o", logKey)
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	for name, args := range map[string][]string{
		"verifier serve": {"verifier", "serve", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key},
		"witness serve": {"audit", "witness", "serve", "--key", witnessKey, "--log", logKey + ".pub", "--state", filepath.Join(dir, "state"),
			"--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key},
	} {
		t.Run(name, func(t *testing.T) {
			addr := serveInBackground(t, args...)
			for _, c := range []struct {
				name   string
				cfg    *tls.Config
				accept bool
			}{
				{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true},
				{"TLS 1.2 AES-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true},
				{"TLS 1.2 ChaCha20-Poly1305", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, true},
				{"TLS 1.2 CBC only", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
					tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
				}}, false},
			} {
				c.cfg.RootCAs = roots
				conn, err := tls.Dial("tcp", addr, c.cfg)
				if err == nil {
					conn.Close()
				}
				if c.accept && err != nil {
					t.Errorf("%s refused: %v", c.name, err)
				}
				if !c.accept && err == nil {
					t.Errorf("%s accepted", c.name)
				}
			}
		})
	}
}

// serveInBackground runs a serving command until the test ends and returns
// the address it listens on (HTTPS).
func serveInBackground(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, args, Env{Stdout: pw, Stderr: &stderr})
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != ExitOK {
			t.Errorf("kura %s: exit %d\n%s", args[0], code, stderr.String())
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "kura listening on https://"); ok {
			go io.Copy(io.Discard, pr)
			return addr
		}
	}
	t.Fatalf("kura %s never listened\n%s", args[0], stderr.String())
	return ""
}

// lockedBuffer is a strings.Builder safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
