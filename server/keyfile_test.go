package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/server"
)

// TestKeyFileModes: every key file a server reads is refused by New when
// others can read or write it, naming the file and the chmod that fixes it;
// the admin keys, a list of public keys, only when others can write it.
func TestKeyFileModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup returns a configuration whose file named by the returned
		// path is valid when 0600.
		setup func(t *testing.T, dir string) (server.Config, string)
		want  error
		// trusted: the file is a trust list (0644 allowed, chmod 644).
		trusted bool
	}{
		{"token signing key", func(t *testing.T, dir string) (server.Config, string) {
			cfg := server.Config{DataDir: dir, Roles: []server.Role{server.RoleVerifier}}
			return cfg, filepath.Join(dir, "verifier-key.pem")
		}, keyfile.ErrInsecure, false},
		{"KEK file", func(t *testing.T, dir string) (server.Config, string) {
			cfg := server.Config{DataDir: dir, Roles: []server.Role{server.RoleKBS}}
			return cfg, filepath.Join(dir, "kek")
		}, kek.ErrInsecureFile, false},
		{"KEK passphrase file", func(t *testing.T, dir string) (server.Config, string) {
			pass := filepath.Join(dir, "passphrase")
			writeFile(t, pass, "correct horse battery staple\n")
			cfg := server.Config{DataDir: dir, Roles: []server.Role{server.RoleKBS}, KBS: server.KBS{KEKPassphraseFile: pass}}
			return cfg, pass
		}, keyfile.ErrInsecure, false},
		{"KEK parameters file", func(t *testing.T, dir string) (server.Config, string) {
			pass := filepath.Join(dir, "passphrase")
			writeFile(t, pass, "correct horse battery staple\n")
			cfg := server.Config{DataDir: dir, Roles: []server.Role{server.RoleKBS}, KBS: server.KBS{KEKPassphraseFile: pass}}
			return cfg, filepath.Join(dir, "kek")
		}, kek.ErrInsecureFile, false},
		{"log key", func(t *testing.T, dir string) (server.Config, string) {
			cfg := server.Config{DataDir: dir, Roles: []server.Role{server.RoleLog}}
			return cfg, filepath.Join(dir, "log-key")
		}, keyfile.ErrInsecure, false},
		{"admin keys", func(t *testing.T, dir string) (server.Config, string) {
			pub, _, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			admins := filepath.Join(dir, "admins")
			writeFile(t, admins, keybroker.AuthorizedKeyLine(pub, "owner")+"\n")
			cfg := server.Config{DataDir: dir, Roles: []server.Role{server.RoleKBS}, KBS: server.KBS{AdminKeysFile: admins}}
			return cfg, admins
		}, keyfile.ErrInsecure, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg, path := tc.setup(t, dir)
			// The first start creates the keys it lacks, 0600.
			s, err := server.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			fix := "chmod 600 " + path
			if tc.trusted {
				fix = "chmod 644 " + path
			}
			for _, mode := range []os.FileMode{0o644, 0o666} {
				if err := os.Chmod(path, mode); err != nil {
					t.Fatal(err)
				}
				var logs bytes.Buffer
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				s, err := server.New(context.Background(), cfg)
				if tc.trusted && mode == 0o644 {
					if err != nil {
						t.Fatalf("mode %04o: %v; a trust list may be readable by others", mode, err)
					}
					s.Close(context.Background())
					continue
				}
				if err == nil {
					s.Close(context.Background())
					t.Fatalf("mode %04o: accepted", mode)
				}
				if !errors.Is(err, tc.want) || !errors.Is(err, keyfile.ErrInsecure) || fault.KindOf(err) != fault.WrongKey || !strings.Contains(err.Error(), fix) {
					t.Fatalf("mode %04o: %v; want %v of kind wrong key naming %q", mode, err, tc.want, fix)
				}
				if !strings.Contains(logs.String(), "key file refused") {
					t.Errorf("mode %04o: refusal not logged: %s", mode, logs.String())
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
