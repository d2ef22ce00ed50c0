package keybroker

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwe"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/verifier"
)

// TestWithToken: a workload that attested to a separate verifier the broker
// trusts, binding its TEE key, fetches a resource with that verifier's token
// as a Bearer token over real HTTP; the resource opens only with that key.
func TestWithToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	vsrv := simVerifierServer(t, f)

	key, err := NewTEEKey()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := (&verifier.Client{BaseURL: vsrv.URL, HTTP: vsrv.Client()}).Attest(ctx, simAttester(t, 1), key.Public(), []byte("run-1"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
	got, err := c.WithToken(key, rep.Token).Resource(ctx, secretPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("got %q", got)
	}
	// The token binds key: a session holding another key cannot open what
	// the broker released.
	other, _ := NewTEEKey()
	if _, err := c.WithToken(other, rep.Token).Resource(ctx, secretPath); err == nil || !strings.Contains(err.Error(), "decrypt resource") {
		t.Errorf("another TEE key: %v", err)
	}
	// No token, or not a token: unauthenticated.
	if _, err := c.WithToken(key, "not a token").Resource(ctx, secretPath); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a bad token: %v", err)
	}
}

// TestBearerTransportHost: the token is sent to the broker's host only,
// not to another host a request is redirected to.
func TestBearerTransportHost(t *testing.T) {
	var auth []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
	}))
	defer other.Close()
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
	}))
	defer broker.Close()
	key, _ := NewTEEKey()
	s := (&Client{BaseURL: broker.URL}).WithToken(key, "tok")
	resp, err := s.hc.Get(broker.URL + "/kbs/v0/resource/a/b/c")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(auth) != 2 || auth[0] != "Bearer tok" || auth[1] != "" {
		t.Errorf("Authorization sent: %q; want the broker's host only", auth)
	}
}

// TestReleaseToX25519 releases over real HTTP to a workload whose TEE key is
// X25519 (an OKP tee-pubkey, RFC 8037): the JWE opens with that key in jwx,
// every release carries its own ephemeral key, and a tampered release does
// not open. A kura session's Decrypt opens a release fetched by other means
// and refuses a tampered one.
func TestReleaseToX25519(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	vsrv := simVerifierServer(t, f)

	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	priv, err := jwk.Import(x)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := priv.PublicKey()
	pubJSON, _ := json.Marshal(pub)
	canon, err := CanonicalJWK(pubJSON)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := (&verifier.Client{BaseURL: vsrv.URL, HTTP: vsrv.Client()}).Attest(ctx, simAttester(t, 1), canon, nil)
	if err != nil {
		t.Fatal(err)
	}
	release := func(tok string) []byte {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/kbs/v0/resource/"+secretPath, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		var raw json.RawMessage
		if err := roundTrip(f.srv.Client(), req, &raw); err != nil {
			t.Fatal(err)
		}
		return raw
	}
	epks := map[string]bool{}
	for range 2 {
		raw := release(rep.Token)
		checkFlattenedJWE(t, raw, "ECDH-ES+A256KW", []string{"epk"})
		got, err := jwe.Decrypt(raw, jwe.WithKey(jwa.ECDH_ES_A256KW(), priv))
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("X25519 release: %q, %v", got, err)
		}
		var members struct{ Protected string }
		json.Unmarshal(raw, &members)
		hdr, _ := b64.DecodeString(members.Protected)
		var h struct{ EPK map[string]string }
		json.Unmarshal(hdr, &h)
		if h.EPK["kty"] != "OKP" || h.EPK["crv"] != "X25519" || epks[h.EPK["x"]] {
			t.Errorf("epk %v: want a fresh X25519 key per release", h.EPK)
		}
		epks[h.EPK["x"]] = true
		bad := bytes.Replace(raw, []byte(members.Protected), []byte(flipB64(members.Protected)), 1)
		if _, err := jwe.Decrypt(bad, jwe.WithKey(jwa.ECDH_ES_A256KW(), priv)); err == nil {
			t.Error("tampered X25519 release decrypted")
		}
	}

	// Session.Decrypt, on a P-256 session's release fetched by hand.
	s, err := (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Attest(ctx, simAttester(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw := release(s.Token)
	if got, err := s.Decrypt(raw); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("Decrypt = %q, %v", got, err)
	}
	var members map[string]string
	json.Unmarshal(raw, &members)
	for _, m := range []string{"ciphertext", "tag", "encrypted_key"} {
		bad := bytes.Replace(raw, []byte(members[m]), []byte(flipB64(members[m])), 1)
		if _, err := s.Decrypt(bad); err == nil {
			t.Errorf("Decrypt of a release with a tampered %s: no error", m)
		}
	}
	if _, err := s.Decrypt(raw[:len(raw)/2]); err == nil {
		t.Error("Decrypt of a truncated release: no error")
	}
}

// simVerifierServer serves, over real HTTP until the test ends, a separate
// verifier of INSECURE sim evidence (dev mode) whose tokens f's broker
// trusts: signed by f.issuer.
func simVerifierServer(t *testing.T, f *fixture) *httptest.Server {
	t.Helper()
	simV, _ := sim.NewVerifier(sim.Config{})
	ap, err := appraisal.New(context.Background(), appraisal.Config{DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV}, Appraiser: ap, Issuer: f.issuer})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, slog.New(slog.DiscardHandler))
	vsrv := httptest.NewServer(mux)
	t.Cleanup(vsrv.Close)
	return vsrv
}
