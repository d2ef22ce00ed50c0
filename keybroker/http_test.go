package keybroker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/store"
)

func newTestLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

func post(t *testing.T, f *fixture, path string, body io.Reader, cookie *http.Cookie) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, body)
	req.Header.Set("Content-Type", "application/json")
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestKBSProtocolErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{dev: true})
	auth := post(t, f, "/kbs/v0/auth", strings.NewReader(`{"version":"0.1.1","tee":"sample","extra-params":""}`), nil)
	if auth.StatusCode != 200 || len(auth.Cookies()) != 1 || auth.Cookies()[0].Name != SessionCookie {
		t.Fatalf("auth: %d cookies %v", auth.StatusCode, auth.Cookies())
	}
	cookie := auth.Cookies()[0]
	tests := []struct {
		name   string
		path   string
		body   io.Reader
		cookie *http.Cookie
		status int
	}{
		{"auth malformed", "/kbs/v0/auth", strings.NewReader(`{"version":`), nil, 400},
		{"auth wrong version", "/kbs/v0/auth", strings.NewReader(`{"version":"9.0.0","tee":"snp"}`), nil, 400},
		{"auth unknown tee", "/kbs/v0/auth", strings.NewReader(`{"version":"0.1.1","tee":"sgx"}`), nil, 400},
		{"auth oversized", "/kbs/v0/auth", io.LimitReader(spaces{}, 1<<20), nil, 413},
		{"attest without session", "/kbs/v0/attest", strings.NewReader(`{}`), nil, 401},
		{"attest unknown session", "/kbs/v0/attest", strings.NewReader(`{}`), &http.Cookie{Name: SessionCookie, Value: "nope"}, 401},
		{"attest malformed", "/kbs/v0/attest", strings.NewReader(`{"runtime-data":`), cookie, 400},
		{"attest wrong nonce", "/kbs/v0/attest", strings.NewReader(`{"runtime-data":{"nonce":"AAAA","tee-pubkey":{}},"tee-evidence":{}}`), cookie, 401},
		{"attest oversized", "/kbs/v0/attest", io.LimitReader(spaces{}, maxKBSBody+10), cookie, 413},
	}
	for _, tt := range tests {
		if resp := post(t, f, tt.path, tt.body, tt.cookie); resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}
}

type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestAdminAuth(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name string
		c    *AdminClient
	}{
		{"unknown key", &AdminClient{BaseURL: f.srv.URL, Key: stranger}},
		{"clock far behind", &AdminClient{BaseURL: f.srv.URL, Key: f.admin.Key, Now: func() time.Time { return time.Now().Add(-time.Hour) }}},
		{"clock far ahead", &AdminClient{BaseURL: f.srv.URL, Key: f.admin.Key, Now: func() time.Time { return time.Now().Add(time.Hour) }}},
	}
	for _, tt := range tests {
		if _, err := tt.c.List(ctx, ""); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want 401", tt.name, err)
		}
	}
	// Unsigned, and a replayed signed request.
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/kbs/v0/admin/resources", nil)
	if resp, _ := f.srv.Client().Do(req); resp.StatusCode != 401 {
		t.Errorf("unsigned: %d, want 401", resp.StatusCode)
	}
	rec := &recordingTransport{}
	c := &AdminClient{BaseURL: f.srv.URL, Key: f.admin.Key, HTTP: &http.Client{Transport: rec}}
	if _, err := c.List(ctx, ""); err != nil {
		t.Fatal(err)
	}
	replay, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/kbs/v0/admin/resources?prefix=", nil)
	replay.Header.Set("Authorization", rec.auth)
	if resp, _ := f.srv.Client().Do(replay); resp.StatusCode != 401 {
		t.Errorf("replayed admin request: %d, want 401", resp.StatusCode)
	}
	// A signature over another body does not verify.
	body, _ := json.Marshal(PutRequest{Value: []byte("evil")})
	put, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/kbs/v0/admin/resource/"+secretPath, bytes.NewReader(body))
	put.Header.Set("Authorization", strings.Replace(rec.auth, "nonce=\"", "nonce=\"x", 1))
	if resp, _ := f.srv.Client().Do(put); resp.StatusCode != 401 {
		t.Errorf("forged admin write: %d, want 401", resp.StatusCode)
	}
	if m, _ := f.admin.Get(ctx, secretPath); m.Version != 1 {
		t.Errorf("forged write changed the resource: %+v", m)
	}

	closed := newFixture(t, fixtureOpts{dev: true, noAdmin: true})
	if _, err := (&AdminClient{BaseURL: closed.srv.URL, Key: f.admin.Key}).List(ctx, ""); err == nil {
		t.Error("admin API open without admin keys")
	}
}

type recordingTransport struct{ auth string }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.auth = req.Header.Get("Authorization")
	return http.DefaultTransport.RoundTrip(req)
}

func TestVersionsAndDelete(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	for i, v := range []string{"one", "two"} {
		got, err := f.admin.Put(ctx, secretPath, []byte(v), nil, "")
		if err != nil || got != int64(i+1) {
			t.Fatalf("put %d: version %d, %v", i, got, err)
		}
	}
	c := &Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
	s, err := c.Attest(ctx, simAttester(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Resource(ctx, secretPath); err != nil || string(got) != "two" {
		t.Fatalf("latest = %q, %v", got, err)
	}
	if _, err := f.admin.Delete(ctx, secretPath); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resource(ctx, secretPath); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted resource: %v, want 404", err)
	}
	if ms, _ := f.admin.List(ctx, ""); len(ms) != 0 {
		t.Errorf("list after delete = %+v", ms)
	}
	if _, err := f.admin.SetPolicy(ctx, "repo/owner-a", "package kura.release\nallow := "); !errors.Is(err, ErrBadRequest) {
		t.Errorf("broken policy accepted: %v", err)
	}
}

func FuzzAttestation(f *testing.F) {
	fx := newFixture(f, fixtureOpts{dev: true})
	f.Add([]byte(`{"runtime-data":{"nonce":"AAAA","tee-pubkey":{"kty":"EC"}},"tee-evidence":{"version":1}}`))
	f.Add([]byte(`{"tee-pubkey":{"kty":"OKP","crv":"X25519","x":"AA"},"tee-evidence":"{\"version\":1}"}`))
	sess := &session{TEE: "sim", Nonce: bytes.Repeat([]byte{1}, 32)}
	f.Fuzz(func(t *testing.T, data []byte) {
		var att kbsAttestation
		if decodeStrict(data, &att) != nil {
			return
		}
		if b, err := fx.broker.bundleFor(sess, &att); err == nil && !bytes.Equal(b.RuntimeData.Nonce, sess.Nonce) {
			t.Fatal("accepted a bundle for another nonce")
		}
	})
}

func FuzzAdminAuthorization(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	admins, err := NewAdmins([]AdminKey{{Name: "o", Public: pub}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(`Kura-Signature key="` + AdminKeyID(pub) + `", ts="1", nonce="aaaaaaaaaaaaaaaa", sig="` + base64.StdEncoding.EncodeToString(make([]byte, 64)) + `"`)
	f.Add("Kura-Signature ,,,=")
	f.Fuzz(func(t *testing.T, h string) {
		req, _ := http.NewRequest(http.MethodGet, "http://x/kbs/v0/admin/resources", nil)
		req.Header.Set("Authorization", h)
		if _, err := admins.authenticate(req, nil, store.NewMemoryEphemeral(0, nil)); err == nil {
			t.Fatal("accepted a request without a valid signature")
		}
	})
}
