package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/inference"
	"github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// gateway starts a dev verifier, a model server and a gateway attested
// with the sim TEE, and returns the gateway's URL, a policy file's
// contents that trusts it, and a count of the sealed requests it got.
func gateway(t *testing.T) (*url.URL, string, *atomic.Int64) {
	t.Helper()
	ctx := context.Background()
	simV, _ := sim.NewVerifier(sim.Config{})
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: true})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: "test"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV}, Appraiser: ap, Issuer: iss})
	if err != nil {
		t.Fatal(err)
	}
	vmux := http.NewServeMux()
	svc.Register(vmux, nil)
	vs := httptest.NewServer(vmux)
	t.Cleanup(vs.Close)
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"content":"sealed answer"}}]}`)
	}))
	t.Cleanup(model.Close)
	a, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := a.Measurement()
	keys, err := inference.NewKeySet(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := trust.NewPublisher(trust.PublisherConfig{Verifier: &verifier.Client{BaseURL: vs.URL}, Attester: a, Keys: keys.Configs})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse(model.URL)
	gw, err := inference.NewGateway(inference.GatewayConfig{Upstream: up, Keys: keys, Attestation: pub, ServedKeys: pub.Keys})
	if err != nil {
		t.Fatal(err)
	}
	var sealed atomic.Int64
	gs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			sealed.Add(1)
		}
		gw.ServeHTTP(w, r)
	}))
	t.Cleanup(gs.Close)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, iss.JWKS(), 0o644); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(gs.URL)
	return u, fmt.Sprintf("verifiers: [%q]\ngateway: {measurements: [{tee: sim, value: %s}], allow_insecure: true}\n", jwks, hex.EncodeToString(m)), &sealed
}

func newProxy(t *testing.T, gw *url.URL, policy string) *Proxy {
	t.Helper()
	pol, err := trust.ParsePolicy([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(context.Background(), Config{Gateway: gw, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProxy: as a RoundTripper and as a handler, the proxy verifies the
// gateway, seals the request and opens the answer; its status says what
// it verified. Under a policy the gateway does not meet, nothing sealed
// reaches the gateway and the status says why.
func TestProxy(t *testing.T) {
	gw, policy, sealed := gateway(t)
	p := newProxy(t, gw, policy)
	c := &http.Client{Transport: p}
	resp, err := c.Post("http://gateway.invalid/v1/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "sealed answer") || sealed.Load() != 1 {
		t.Fatalf("RoundTrip: %s %q, %d sealed requests", resp.Status, body, sealed.Load())
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	resp, err = http.Get(srv.URL + StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if !st.Verified || st.Status == nil || st.Status.TEE != "sim" || !st.Status.Insecure {
		t.Errorf("status = %+v", st)
	}

	strict := newProxy(t, gw, policy+"gpu: {required: true}\n")
	_, err = (&http.Client{Transport: strict}).Post("http://gateway.invalid/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if !errors.Is(err, trust.ErrUntrusted) || sealed.Load() != 1 {
		t.Errorf("GPU required: %v, %d sealed requests (want the first only)", err, sealed.Load())
	}
	ssrv := httptest.NewServer(strict)
	t.Cleanup(ssrv.Close)
	resp, err = http.Post(ssrv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || sealed.Load() != 1 {
		t.Errorf("GPU required, through the handler: %s, %d sealed requests", resp.Status, sealed.Load())
	}
	resp, _ = http.Get(ssrv.URL + StatusPath)
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if st.Verified || !strings.Contains(st.Reason, "no gpu0") {
		t.Errorf("GPU required status = %+v", st)
	}
}
