package keybroker

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

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
	simV, _ := sim.NewVerifier(sim.Config{})
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: true})
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
	defer vsrv.Close()

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
