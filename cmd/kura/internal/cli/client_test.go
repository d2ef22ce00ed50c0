package cli

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/testpki"
	"github.com/kura-cc/kura/server"
)

// privateCA makes a CA and a server certificate it signs for 127.0.0.1,
// and writes the CA's certificate to dir/name.
func privateCA(t *testing.T, dir, name string) (caFile string, serverCert tls.Certificate) {
	t.Helper()
	ca, cert := testpki.PrivateCA(t, name)
	caFile = filepath.Join(dir, name)
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return caFile, cert
}

// tlsServer is a dev-mode kura server with every role over HTTPS, its
// certificate signed by a private CA, whose owner API accepts the key
// kura kbs admin-key wrote to adminKey.
type tlsServer struct {
	url, ca, adminKey, logKey, dir string
	// cert is the server's certificate, for other test servers on
	// 127.0.0.1 that the same CA vouches for.
	cert tls.Certificate
}

func startTLSServer(t *testing.T) *tlsServer {
	t.Helper()
	dir := t.TempDir()
	s := &tlsServer{dir: dir, adminKey: filepath.Join(dir, "owner.pem"), logKey: filepath.Join(dir, "data", "log-key.pub")}
	var out, errOut strings.Builder
	if code := Run(context.Background(), []string{"kbs", "admin-key", "-o", s.adminKey, "--name", "owner"}, Env{Stdout: &out, Stderr: &errOut}); code != 0 {
		t.Fatalf("kbs admin-key: exit %d: %s", code, errOut.String())
	}
	admins := filepath.Join(dir, "admins")
	if err := os.WriteFile(admins, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	s.ca, s.cert = privateCA(t, dir, "ca.pem")
	ctx := context.Background()
	srv, err := server.New(ctx, server.Config{
		DataDir: filepath.Join(dir, "data"), DevMode: true, Version: "kura " + Version,
		Logger: slog.New(slog.DiscardHandler), KBS: server.KBS{AdminKeysFile: admins},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.TLS = serverTLSConfig(s.cert)
	hs.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes the test provokes
	hs.StartTLS()
	t.Cleanup(func() {
		hs.Close()
		srv.Close(context.Background())
	})
	s.url = hs.URL
	return s
}

// TestClientConfig: the client configuration file's keys and refusals, and
// the precedence flag > environment > file > default.
func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		p := filepath.Join(dir, "client.yaml")
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	load := func(env map[string]string) (*clientConfig, error) {
		g := &globals{env: &Env{Getenv: func(k string) string { return env[k] }}}
		return g.loadClientConfig()
	}
	p := write("url: https://kura.example:8443\nca: ca.pem\nidentity: ~/party\nadmin_key: /keys/owner.pem\n")
	c, err := load(map[string]string{"KURA_CLIENT_CONFIG": p, "HOME": "/home/me"})
	if err != nil {
		t.Fatal(err)
	}
	if c.url != "https://kura.example:8443" || c.ca != filepath.Join(dir, "ca.pem") || c.identity != "/home/me/party" || c.adminKey != "/keys/owner.pem" {
		t.Errorf("loaded %+v", c)
	}
	for _, tc := range []struct{ text, want string }{
		{"url: https://a\nserver: https://b\n", `line 2: unknown key "server"`},
		{"url: https://a\nurl: https://b\n", `line 2: key "url" repeated (first on line 1)`},
		{"ca: [a, b]\n", `key "ca": want a single value`},
		{"- url\n", "want a mapping"},
	} {
		_, err := load(map[string]string{"KURA_CLIENT_CONFIG": write(tc.text)})
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != ExitUsage {
			t.Errorf("%q: %v, want usage error with %q", tc.text, err, tc.want)
		}
	}
	// A file named by KURA_CLIENT_CONFIG must exist; the default one need not.
	if _, err := load(map[string]string{"KURA_CLIENT_CONFIG": filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Error("a missing KURA_CLIENT_CONFIG file is accepted")
	}
	if c, err := load(map[string]string{"HOME": dir}); err != nil || *c != (clientConfig{}) {
		t.Errorf("no default file: %+v, %v", c, err)
	}
	// Precedence: the flag (or KURA_* variable, which is the flag's
	// default) wins over the file, the file over the default.
	write("url: https://from-file\n")
	env := map[string]string{"KURA_CLIENT_CONFIG": filepath.Join(dir, "client.yaml")}
	g := &globals{env: &Env{Getenv: func(k string) string { return env[k] }}}
	for _, tc := range []struct{ set, want string }{{"https://from-flag", "https://from-flag"}, {"", "https://from-file"}} {
		url := tc.set
		if err := (&clientFlags{g: g, url: &url}).fill(); err != nil || url != tc.want {
			t.Errorf("url %q: got %q, %v; want %q", tc.set, url, err, tc.want)
		}
	}
	delete(env, "KURA_CLIENT_CONFIG")
	url := ""
	if err := (&clientFlags{g: g, url: &url}).fill(); err != nil || url != defaultServerURL {
		t.Errorf("default url: %q, %v", url, err)
	}
}
