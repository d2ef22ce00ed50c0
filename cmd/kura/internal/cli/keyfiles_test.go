package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// run runs the kura command line and returns its exit code and output.
func run(ctx context.Context, args ...string) (int, string) {
	var out strings.Builder
	code := Run(ctx, args, Env{Stdout: &out, Stderr: &out})
	return code, out.String()
}

// mustRun runs a command that must succeed.
func mustRun(t *testing.T, args ...string) {
	t.Helper()
	if code, out := run(context.Background(), args...); code != ExitOK {
		t.Fatalf("kura %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
}

// TestKeyFileModes: every command that reads a private key, passphrase or
// credential file refuses one that group or others can read or write (exit
// 7), naming the file and the chmod that fixes it, before it serves or
// sends anything.
func TestKeyFileModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup writes valid files into dir and returns the command line
		// and the file whose mode is changed.
		setup func(t *testing.T, dir string) ([]string, string)
	}{
		{"serve --tls-key", func(t *testing.T, dir string) ([]string, string) {
			cert, key := selfSigned(t, dir)
			return []string{"serve", "--data", dir, "--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key}, key
		}},
		{"serve --dev: the self-signed key", func(t *testing.T, dir string) ([]string, string) {
			_, key := selfSigned(t, filepath.Join(dir, "tls"))
			return []string{"serve", "--dev", "--data", dir, "--addr", "127.0.0.1:0"}, key
		}},
		{"serve --key (token signing key)", func(t *testing.T, dir string) ([]string, string) {
			key := filepath.Join(dir, "token.pem")
			writeECKey(t, key)
			return []string{"serve", "--data", dir, "--addr", "127.0.0.1:0", "--key", key}, key
		}},
		{"serve --kek-passphrase-file", func(t *testing.T, dir string) ([]string, string) {
			pass := filepath.Join(dir, "passphrase")
			writeSecret(t, pass, "correct horse battery staple\n")
			return []string{"serve", "--data", dir, "--addr", "127.0.0.1:0", "--kek-passphrase-file", pass}, pass
		}},
		{"serve --s3-secret-key-file", func(t *testing.T, dir string) ([]string, string) {
			access, secret := filepath.Join(dir, "access"), filepath.Join(dir, "secret")
			writeSecret(t, access, "AKIAEXAMPLE\n")
			writeSecret(t, secret, "not-a-real-secret\n")
			return []string{"serve", "--data", dir, "--addr", "127.0.0.1:0", "--blob", "s3://bucket", "--s3-endpoint", "127.0.0.1:1",
				"--s3-access-key-file", access, "--s3-secret-key-file", secret}, secret
		}},
		{"secret put --admin-key", func(t *testing.T, dir string) ([]string, string) {
			key := filepath.Join(dir, "admin.pem")
			mustRun(t, "kbs", "admin-key", "-o", key)
			value := filepath.Join(dir, "value")
			writeSecret(t, value, "s3cret")
			return []string{"secret", "put", "owner/key/a", "--url", "http://127.0.0.1:1", "--admin-key", key, "--value-file", value}, key
		}},
		{"data register --identity", func(t *testing.T, dir string) ([]string, string) {
			id := filepath.Join(dir, "airline")
			mustRun(t, "party", "init", "airline", "-o", id)
			return []string{"data", "register", filepath.Join(dir, "none.kura"), "--key-file", filepath.Join(dir, "none.key"), "--identity", id}, filepath.Join(id, "identity.key")
		}},
		{"audit witness serve --key", func(t *testing.T, dir string) ([]string, string) {
			key, logKey := filepath.Join(dir, "witness.key"), filepath.Join(dir, "log.key")
			mustRun(t, "audit", "keygen", "--origin", "witness.test", "-o", key)
			mustRun(t, "audit", "keygen", "--origin", "log.test", "-o", logKey)
			return []string{"audit", "witness", "serve", "--key", key, "--log", logKey + ".pub", "--state", filepath.Join(dir, "state"), "--addr", "127.0.0.1:0"}, key
		}},
		{"audit witness serve --tls-key", func(t *testing.T, dir string) ([]string, string) {
			key, logKey := filepath.Join(dir, "witness.key"), filepath.Join(dir, "log.key")
			mustRun(t, "audit", "keygen", "--origin", "witness.test", "-o", key)
			mustRun(t, "audit", "keygen", "--origin", "log.test", "-o", logKey)
			cert, tlsKey := selfSigned(t, dir)
			return []string{"audit", "witness", "serve", "--key", key, "--log", logKey + ".pub", "--state", filepath.Join(dir, "state"),
				"--addr", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", tlsKey}, tlsKey
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args, path := tc.setup(t, dir)
			for _, mode := range []os.FileMode{0o644, 0o666} {
				if err := os.Chmod(path, mode); err != nil {
					t.Fatal(err)
				}
				// A command that wrongly accepted the file would serve
				// until the context ends.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				code, out := run(ctx, args...)
				cancel()
				if code != ExitWrongKey || !strings.Contains(out, "chmod 600 "+path) || strings.Contains(out, "listening") {
					t.Errorf("mode %04o: exit %d, want %d naming chmod 600 %s, before serving\n%s", mode, code, ExitWrongKey, path, out)
				}
			}
		})
	}
}

// selfSigned writes a self-signed certificate and its key (0600) in dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if filepath.Base(dir) == "tls" {
		cert, key = filepath.Join(dir, "dev-cert.pem"), filepath.Join(dir, "dev-key.pem")
	}
	if _, _, err := loadOrCreateSelfSigned(cert, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// writeECKey writes an ECDSA P-256 key, PKCS #8 PEM, to path (0600).
func writeECKey(t *testing.T, path string) {
	t.Helper()
	_, key := selfSigned(t, t.TempDir())
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	writeSecret(t, path, string(data))
}

func writeSecret(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
