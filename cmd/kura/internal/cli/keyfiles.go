package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/kura-cc/kura/internal/keyfile"
)

// readKeyFile reads the secret file a flag names (internal/keyfile): one
// that group or others can reach is refused (exit 7), naming the chmod that
// fixes it; any other failure is a usage error.
func readKeyFile(flag, path string) ([]byte, error) {
	data, err := keyfile.ReadSecret(path)
	if err != nil {
		return nil, keyFileError(flag, err)
	}
	return data, nil
}

// keyFileError reports err, from reading the key file flag names: a file
// others can reach keeps its kind (exit 7); anything else is a usage error.
func keyFileError(flag string, err error) error {
	if errors.Is(err, keyfile.ErrInsecure) {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return usagef("%s: %w", flag, err)
}

// loadKeyPair loads a TLS certificate and its private key, refusing a key
// file that group or others can reach (an error wrapping
// keyfile.ErrInsecure).
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	keyPEM, err := keyfile.ReadSecret(keyFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	defer clear(keyPEM)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// loadTLSFlags loads --tls-cert and --tls-key.
func loadTLSFlags(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := loadKeyPair(certFile, keyFile)
	if errors.Is(err, keyfile.ErrInsecure) {
		return cert, fmt.Errorf("--tls-key: %w", err)
	}
	if err != nil {
		return cert, usagef("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}
