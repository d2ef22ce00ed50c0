package verifier

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/veraison/ear"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/token"
)

type fixture struct {
	svc    *Service
	srv    *httptest.Server
	client *Client
	logs   *bytes.Buffer
}

func newFixture(t testing.TB, dev bool) *fixture {
	t.Helper()
	ctx := context.Background()
	simV, err := sim.NewVerifier(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: dev})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: "kura test"})
	if err != nil {
		t.Fatal(err)
	}
	logs := new(bytes.Buffer)
	log := slog.New(slog.NewJSONHandler(logs, nil))
	svc, err := New(Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV}, Appraiser: ap, Issuer: iss, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, log)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{svc: svc, srv: srv, client: &Client{BaseURL: srv.URL, HTTP: srv.Client()}, logs: logs}
}

func simAttester(t testing.TB) *sim.Attester {
	t.Helper()
	a, err := sim.NewAttester(sim.AttesterConfig{Measurement: bytes.Repeat([]byte{1}, sim.MeasurementSize)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEndToEnd: sim attester -> verifier over HTTP -> EAR -> token verified
// against the JWKS fetched over HTTP.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	for _, dev := range []bool{true, false} {
		f := newFixture(t, dev)
		pub := []byte(`{"kty":"OKP","crv":"X25519","x":"test"}`)
		resp, err := f.client.Attest(ctx, simAttester(t), pub, []byte("manifest:abc"))
		if err != nil {
			t.Fatalf("dev=%v: Attest: %v", dev, err)
		}
		if !resp.Insecure || !strings.Contains(resp.Warning, "INSECURE") {
			t.Errorf("dev=%v: sim response not marked INSECURE: %+v", dev, resp)
		}
		jwks, err := f.client.JWKS(ctx)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := token.ParseJWKS(jwks)
		if err != nil {
			t.Fatal(err)
		}
		tv, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		claims, err := tv.Verify(context.Background(), []byte(resp.Token))
		if err != nil {
			t.Fatalf("dev=%v: token does not verify against JWKS: %v", dev, err)
		}
		cpu := claims.Submods["cpu0"]
		want := ear.TrustTierContraindicated // sim refused outside dev mode
		if dev {
			want = ear.TrustTierWarning // accepted, never affirming
		}
		if cpu.Status != want || resp.Status != want.String() {
			t.Errorf("dev=%v: status %v (response %s), want %v", dev, cpu.Status, resp.Status, want)
		}
		if !bytes.Equal(claims.RuntimePublicKey, pub) || string(claims.RuntimeContext) != "manifest:abc" {
			t.Errorf("runtime data not carried in the token: %q %q", claims.RuntimePublicKey, claims.RuntimeContext)
		}
		if cpu.Policy["warning"] == nil || cpu.Evidence["insecure"] != true {
			t.Errorf("token does not say INSECURE: %+v", cpu)
		}
		if !strings.Contains(f.logs.String(), `"msg":"evidence appraised"`) {
			t.Errorf("decision not logged: %s", f.logs)
		}
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, true)
	a := simAttester(t)

	fresh := func() *attestation.Bundle {
		n, err := f.client.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rd := attestation.RuntimeData{Nonce: n.Nonce, PublicKey: []byte("pk")}
		b, err := a.Attest(ctx, rd.ReportData())
		if err != nil {
			t.Fatal(err)
		}
		b.RuntimeData = rd
		return b
	}

	replayed := fresh()
	if _, err := f.client.Verify(ctx, replayed); err != nil {
		t.Fatal(err)
	}
	swappedKey := fresh()
	swappedKey.RuntimeData.PublicKey = []byte("attacker key")
	unknownNonce := fresh()
	unknownNonce.RuntimeData.Nonce = bytes.Repeat([]byte{9}, NonceSize)
	noNonce := fresh()
	noNonce.RuntimeData = attestation.RuntimeData{}
	otherTEE := fresh()
	otherTEE.TEE = attestation.SNP

	tests := []struct {
		name string
		b    *attestation.Bundle
		want error
	}{
		{"replayed nonce", replayed, attestation.ErrNonce},
		{"runtime data swapped", swappedKey, attestation.ErrBinding},
		{"nonce not issued", unknownNonce, attestation.ErrNonce},
		{"no nonce", noNonce, attestation.ErrNonce},
		{"tee not enabled", otherTEE, attestation.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.client.Verify(ctx, tt.b); !errors.Is(err, tt.want) {
				t.Errorf("Verify error = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("expired nonce", func(t *testing.T) {
		now := time.Now()
		saved := f.svc.nonces
		f.svc.nonces = newMemoryNonces(5*time.Minute, func() time.Time { return now }, 10)
		defer func() { f.svc.nonces = saved }()
		b := fresh()
		now = now.Add(time.Hour)
		if _, err := f.client.Verify(ctx, b); !errors.Is(err, attestation.ErrNonce) || !strings.Contains(err.Error(), "expired") {
			t.Errorf("Verify error = %v, want expired nonce", err)
		}
	})
}

func TestHTTPErrors(t *testing.T) {
	f := newFixture(t, true)
	post := func(body io.Reader) (*http.Response, map[string]any) {
		resp, err := f.srv.Client().Post(f.srv.URL+"/v1/attestation/verify", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p map[string]any
		json.NewDecoder(resp.Body).Decode(&p)
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("content type %q, want problem+json", ct)
		}
		return resp, p
	}
	tests := []struct {
		name   string
		body   io.Reader
		status int
	}{
		{"malformed", strings.NewReader(`{"version":`), http.StatusBadRequest},
		{"oversized", io.LimitReader(zeros{}, attestation.MaxBundleSize+10), http.StatusRequestEntityTooLarge},
		{"empty", strings.NewReader(``), http.StatusBadRequest},
	}
	for _, tt := range tests {
		resp, p := post(tt.body)
		if resp.StatusCode != tt.status || p["request_id"] == nil {
			t.Errorf("%s: status %d, problem %v; want %d with a request id", tt.name, resp.StatusCode, p, tt.status)
		}
	}
	resp, err := f.srv.Client().Get(f.srv.URL + "/v1/attestation/nonce")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET nonce: %d, want 405", resp.StatusCode)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func BenchmarkVerifySim(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, true)
	a := simAttester(b)
	bundles := make([]*attestation.Bundle, 0, 1024)
	mk := func() *attestation.Bundle {
		n, _, err := f.svc.Nonce(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		rd := attestation.RuntimeData{Nonce: n}
		bb, err := a.Attest(ctx, rd.ReportData())
		if err != nil {
			b.Fatal(err)
		}
		bb.RuntimeData = rd
		return bb
	}
	for b.Loop() {
		b.StopTimer()
		if len(bundles) == 0 {
			for range cap(bundles) {
				bundles = append(bundles, mk())
			}
		}
		bb := bundles[len(bundles)-1]
		bundles = bundles[:len(bundles)-1]
		b.StartTimer()
		if _, err := f.svc.Verify(ctx, bb, Options{Freshness: IssuedNonce}); err != nil {
			b.Fatal(err)
		}
	}
}
