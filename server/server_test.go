package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/token"
)

func newServer(t *testing.T, cfg server.Config) *server.Server {
	t.Helper()
	s, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, []byte) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// TestAllRoles: with no roles named, every role runs, each route answers,
// and the keys and state are created in the data directory.
func TestAllRoles(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, server.Config{DataDir: dir, DevMode: true})
	if !slices.Equal(s.Roles(), server.AllRoles) {
		t.Fatalf("roles %v, want %v", s.Roles(), server.AllRoles)
	}
	for path, want := range map[string]int{
		"/healthz":                  200,
		"/readyz":                   200,
		"/metrics":                  200,
		"/.well-known/jwks.json":    200,
		"/log/checkpoint":           200,
		"/v1/collaborations/none":   404,
		"/v1/cleanroom/results/bad": 400,
		"/kbs/v0/resource/a/b/c":    401,
		"/no/such/route":            404,
	} {
		if got, body := get(t, s.Handler(), path); got != want {
			t.Errorf("GET %s: %d %s, want %d", path, got, body, want)
		}
	}
	_, body := get(t, s.Handler(), "/healthz")
	var h struct {
		DevMode bool     `json:"dev_mode"`
		Roles   []string `json:"roles"`
	}
	if err := json.Unmarshal(body, &h); err != nil || !h.DevMode || len(h.Roles) != 4 {
		t.Errorf("healthz %s (%v)", body, err)
	}
	for _, f := range []string{"verifier-key.pem", "kek", "kbs.db", "log-key", "log-key.pub", "log", "blobs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data directory: %v", err)
		}
	}
}

// TestVerifierAlone: the verifier alone keeps its nonces in memory and
// creates no store; other roles' routes are absent; SeparateMetrics moves
// /metrics to MetricsHandler.
func TestVerifierAlone(t *testing.T) {
	dir := t.TempDir()
	s := newServer(t, server.Config{DataDir: dir, Roles: []server.Role{server.RoleVerifier}, SeparateMetrics: true})
	if code, _ := get(t, s.Handler(), "/kbs/v0/resource/a/b/c"); code != 404 {
		t.Errorf("key broker route served by a verifier-only server: %d", code)
	}
	if code, _ := get(t, s.Handler(), "/metrics"); code != 404 {
		t.Errorf("/metrics on the main handler with SeparateMetrics: %d", code)
	}
	if code, _ := get(t, s.MetricsHandler(), "/metrics"); code != 200 {
		t.Errorf("/metrics on the metrics handler: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "kbs.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a verifier without a store created one: %v", err)
	}
}

// TestKBSAloneServesJWKS: a key broker without the verifier role still
// publishes its built-in verifier's keys at /.well-known/jwks.json, and
// they verify the tokens its /kbs/v0/attest issues; the verifier API is
// not served.
func TestKBSAloneServesJWKS(t *testing.T) {
	s := newServer(t, server.Config{DataDir: t.TempDir(), DevMode: true, Roles: []server.Role{server.RoleKBS}})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx := context.Background()
	keys, err := token.FetchJWKS(ctx, srv.Client(), srv.URL+"/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	a, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := (&keybroker.Client{BaseURL: srv.URL, HTTP: srv.Client()}).Attest(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, []byte(sess.Token)); err != nil {
		t.Errorf("the broker's token does not verify under its published JWKS: %v", err)
	}
	resp, err := srv.Client().Post(srv.URL+"/v1/attestation/nonce", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /v1/attestation/nonce on a KBS-only server: %d, want 404", resp.StatusCode)
	}
}

// TestDrain: a draining server is not ready.
func TestDrain(t *testing.T) {
	s := newServer(t, server.Config{DataDir: t.TempDir(), Roles: []server.Role{server.RoleVerifier}})
	s.Drain("shutting down")
	if code, body := get(t, s.Handler(), "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining: %d %s", code, body)
	}
}

// TestConfigErrors: configurations that cannot work are refused with
// ErrConfig, and nothing is left open.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	for name, cfg := range map[string]server.Config{
		"unknown role":             {DataDir: dir, Roles: []server.Role{"coordinatr"}},
		"coordinator without log":  {DataDir: dir, Roles: []server.Role{server.RoleCoordinator}},
		"unreadable token key":     {DataDir: dir, TokenKeyFile: bad},
		"missing reference values": {DataDir: dir, Verification: server.Verification{ReferenceFile: filepath.Join(dir, "none.yaml")}},
		"missing admin keys":       {DataDir: dir, Roles: []server.Role{server.RoleKBS}, KBS: server.KBS{AdminKeysFile: filepath.Join(dir, "none")}},
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := server.New(context.Background(), cfg); !errors.Is(err, server.ErrConfig) {
				if s != nil {
					s.Close(context.Background())
				}
				t.Fatalf("got %v, want ErrConfig", err)
			}
		})
	}
}

// TestWritesRateLimited: past its burst, one client's POSTs under /v1/ are
// answered 429 with Retry-After, while its reads and another client's
// writes still pass.
func TestWritesRateLimited(t *testing.T) {
	s := newServer(t, server.Config{DataDir: t.TempDir(), Roles: []server.Role{server.RoleVerifier}, RateLimit: 1})
	post := func(addr string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/v1/attestation/nonce", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		return w
	}
	codes := []int{}
	for range 4 {
		codes = append(codes, post("192.0.2.1:1234").Code)
	}
	if !slices.Equal(codes[:3], []int{200, 200, 200}) || codes[3] != http.StatusTooManyRequests {
		t.Errorf("nonces from one client: %v, want a burst of 3 then 429", codes)
	}
	if w := post("192.0.2.1:1234"); w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	if w := post("198.51.100.7:1"); w.Code != http.StatusOK {
		t.Errorf("another client: %d", w.Code)
	}
	r := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("a read by the limited client: %d", w.Code)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("JWKS Access-Control-Allow-Origin %q: a web console on another origin must be able to read the keys", got)
	}
}

// TestTrustJWKSPrivateCA: a broker trusting a remote verifier's JWKS
// behind a private CA fetches it, and starts, only with a client that
// trusts that CA.
func TestTrustJWKSPrivateCA(t *testing.T) {
	remote := newServer(t, server.Config{DataDir: t.TempDir(), Roles: []server.Role{server.RoleVerifier}})
	tlsSrv := httptest.NewTLSServer(remote.Handler())
	defer tlsSrv.Close()
	jwks := tlsSrv.URL + "/.well-known/jwks.json"
	cfg := server.Config{DataDir: t.TempDir(), Roles: []server.Role{server.RoleKBS}, KBS: server.KBS{TrustJWKS: []string{jwks}}}
	if s, err := server.New(context.Background(), cfg); err == nil {
		s.Close(context.Background())
		t.Fatal("a broker fetched a JWKS behind an unknown CA")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("the refusal does not name the certificate: %v", err)
	}
	cfg.KBS.HTTP = tlsSrv.Client()
	newServer(t, cfg)
}
