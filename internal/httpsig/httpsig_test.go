package httpsig_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/store"
)

func TestVerify(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	keys := func(id string) (ed25519.PublicKey, bool) { return pub, id == "alice" }
	body := []byte(`{"v":1}`)
	signed := func(method, url, ctx, id string, key ed25519.PrivateKey, at time.Time, b []byte) *http.Request {
		r := httptest.NewRequest(method, url, bytes.NewReader(b))
		httpsig.Sign(r, b, ctx, id, func(m []byte) []byte { return ed25519.Sign(key, m) }, at)
		return r
	}
	v := &httpsig.Verifier{Context: "kura-collab-v1", Nonces: store.NewMemoryEphemeral(0, func() time.Time { return t0 }), Now: func() time.Time { return t0 }}
	good := signed("PUT", "/v1/collaborations/x", "kura-collab-v1", "alice", priv, t0, body)
	if id, err := v.Verify(good, body, keys); err != nil || id != "alice" {
		t.Fatalf("good request: %q, %v", id, err)
	}
	if _, err := v.Verify(good, body, keys); !errors.Is(err, httpsig.ErrUnauthenticated) || !strings.Contains(err.Error(), "replayed") {
		t.Errorf("replay: %v", err)
	}
	moved := signed("PUT", "/v1/collaborations/x", "kura-collab-v1", "alice", priv, t0, body)
	moved.URL.Path = "/v1/collaborations/y"
	unsigned := httptest.NewRequest("PUT", "/v1/collaborations/x", nil)
	for name, tc := range map[string]struct {
		r    *http.Request
		body []byte
		want string
	}{
		"unsigned":        {unsigned, body, "sign the request"},
		"unknown key":     {signed("PUT", "/v1/collaborations/x", "kura-collab-v1", "mallory", priv, t0, body), body, "not an authorized key"},
		"another key":     {signed("PUT", "/v1/collaborations/x", "kura-collab-v1", "alice", other, t0, body), body, "does not verify"},
		"another body":    {signed("PUT", "/v1/collaborations/x", "kura-collab-v1", "alice", priv, t0, body), []byte(`{"v":2}`), "does not verify"},
		"another path":    {moved, body, "does not verify"},
		"another API":     {signed("PUT", "/v1/collaborations/x", "kura-admin-v1", "alice", priv, t0, body), body, "does not verify"},
		"too old":         {signed("PUT", "/v1/collaborations/x", "kura-collab-v1", "alice", priv, t0.Add(-httpsig.Window-time.Second), body), body, "from the server's clock"},
		"from the future": {signed("PUT", "/v1/collaborations/x", "kura-collab-v1", "alice", priv, t0.Add(httpsig.Window+time.Second), body), body, "from the server's clock"},
	} {
		if _, err := v.Verify(tc.r, tc.body, keys); !errors.Is(err, httpsig.ErrUnauthenticated) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	bad := httptest.NewRequest("PUT", "/", nil)
	bad.Header.Set("Authorization", `Kura-Signature key=alice, ts="1"`)
	if _, err := v.Verify(bad, nil, keys); !errors.Is(err, httpsig.ErrUnauthenticated) {
		t.Errorf("malformed header: %v", err)
	}
}
