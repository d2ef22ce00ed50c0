package result

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/veraison/ear"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/token"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// trustFixture is a collaboration whose manifest lists two verifiers: one
// publishing its keys at a JWKS URL served over real HTTP, one pinned by
// PEM. A third verifier is on no list.
type trustFixture struct {
	airline, analyst *party.Identity
	listed, pinned   *token.Issuer // on the manifest's list
	stranger         *token.Issuer // on no list
	jwks             *httptest.Server
	collab           []byte
	manifest         *collab.Manifest
	measurement      []byte
}

func newIssuer(t *testing.T, build string) (*token.Issuer, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: build, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return iss, key
}

func newTrustFixture(t *testing.T) *trustFixture {
	t.Helper()
	f := &trustFixture{measurement: bytes.Repeat([]byte{0x11}, sim.MeasurementSize)}
	var pinnedKey *ecdsa.PrivateKey
	f.listed, _ = newIssuer(t, "neutral verifier")
	f.pinned, pinnedKey = newIssuer(t, "pinned verifier")
	f.stranger, _ = newIssuer(t, "stranger verifier")
	f.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/jwks.json" {
			http.NotFound(w, r)
			return
		}
		w.Write(f.listed.JWKS())
	}))
	t.Cleanup(f.jwks.Close)
	der, err := x509.MarshalPKIXPublicKey(&pinnedKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f.airline, _ = party.Generate("airline", party.KEMX25519)
	f.analyst, _ = party.Generate("analyst", party.KEMX25519)
	m := &collab.Manifest{
		Format: collab.FormatVersion, ID: "trust-test", Receivers: []string{"airline", "analyst"},
		Parties: []collab.Party{
			{Name: "airline", Roles: []collab.Role{collab.RoleDataProvider, collab.RoleResultReceiver}, Card: f.airline.Card()},
			{Name: "analyst", Roles: []collab.Role{collab.RoleResultReceiver}, Card: f.analyst.Card()},
		},
		Datasets: []collab.Dataset{{ID: "flights", Owner: "airline", OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 10},
			Descriptor: collab.Descriptor{Version: 1, DatasetID: "flights", Owner: "airline", Format: "parquet",
				Schema: &table.Schema{Columns: []table.Column{{Name: "member_id", Type: table.String, Identity: true}, {Name: "area", Type: table.String}}},
				KeyID:  strings.Repeat("ab", 32), SealedSHA256: strings.Repeat("cd", 32), SealedSize: 100,
				KeyBroker: collab.KeyBrokerRef{URL: "https://kbs.airline.example", Resource: "airline/dataset-key/flights", Version: 1}}}},
		Analyses: []collab.Analysis{{ID: "by_area", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{
			From: "flights", GroupBy: []string{"flights.area"}, Measures: []collab.Measure{{Func: collab.AggCount, As: "n"}}}}},
		Worker: collab.Worker{ReferenceValues: appraisal.ReferenceValues{Measurements: []appraisal.Measurement{
			{TEE: "sim", Name: "worker", Value: hex.EncodeToString(f.measurement)}}}},
		Verifiers: []collab.Verifier{
			{Name: "neutral", JWKSURL: f.jwks.URL + "/.well-known/jwks.json"},
			{Name: "pinned", Key: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))},
		},
	}
	c, err := collab.New(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(f.airline, t0); err != nil {
		t.Fatal(err)
	}
	f.manifest = m
	if f.collab, err = c.Marshal(); err != nil {
		t.Fatal(err)
	}
	return f
}

// run returns a result bundle and a receipt of a run of the fixture's
// collaboration whose attestation token iss issued.
func (f *trustFixture) run(t *testing.T, iss *token.Issuer) (bundle, receipt *File) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	rc := &collab.RunContext{Version: collab.RunContextVersion, Collaboration: f.manifest.ID, ManifestHash: f.manifest.Hash(),
		Analysis: "by_area", RunID: collab.NewRunID(), SigningKey: pub}
	run, err := rc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	a, err := sim.NewAttester(sim.AttesterConfig{Measurement: f.measurement})
	if err != nil {
		t.Fatal(err)
	}
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{7}, 32), PublicKey: []byte(`{"kty":"EC"}`), Context: run}
	ev, err := a.Attest(context.Background(), rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	ev.RuntimeData = rd
	evidence, _ := json.Marshal(ev)
	tok, err := iss.Issue(&token.Claims{Nonce: rd.Nonce, RuntimePublicKey: rd.PublicKey, RuntimeContext: run, Submods: map[string]token.Submod{"cpu0": {
		Status: ear.TrustTierAffirming, PolicyID: "test",
		Evidence: map[string]any{"tee": "sim", "measurement": hex.EncodeToString(f.measurement), "insecure": true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	output := []byte(`{"rows":[]}`)
	sealed, err := SealOutput(output, rc.RunID, []*party.Card{f.airline.Card(), f.analyst.Card()})
	if err != nil {
		t.Fatal(err)
	}
	in := []Input{{Dataset: "flights", SealedSHA256: strings.Repeat("cd", 32), KeyResource: "airline/dataset-key/flights"}}
	bundle, err = SignBundle(&Bundle{Run: run, CreatedAt: t0.Add(time.Minute), Inputs: in, OutputSHA256: DigestHex(output), Outputs: sealed,
		Evidence: evidence, EAR: string(tok), Collaboration: f.collab}, priv)
	if err != nil {
		t.Fatal(err)
	}
	receipt, err = SignReceipt(&Receipt{Run: run, ResultDigest: DigestHex(bundle.Envelope.Payload), DestroyedAt: t0.Add(time.Minute),
		Outcome: "completed", Evidence: evidence, EAR: string(tok), Collaboration: f.collab}, priv)
	if err != nil {
		t.Fatal(err)
	}
	return bundle, receipt
}

// fetch fetches a listed verifier's JWKS over real HTTP.
func (f *trustFixture) fetch(ctx context.Context, url string) (jwk.Set, error) {
	return token.FetchJWKS(ctx, f.jwks.Client(), url)
}

// trust is what the airline, which approved, trusts: the manifest's list.
func (f *trustFixture) trust() Trust {
	return Trust{Party: f.airline.Card().SigningKey, FetchJWKS: f.fetch, DevMode: true}
}

func keySet(t *testing.T, iss *token.Issuer) jwk.Set {
	t.Helper()
	s, err := token.ParseJWKS(iss.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestManifestVerifiers: a party that approved the manifest accepts a
// result whose token comes from a listed verifier, whether its keys are
// fetched from a JWKS URL or pinned, and the receipt with it.
func TestManifestVerifiers(t *testing.T) {
	f := newTrustFixture(t)
	ctx := context.Background()
	for _, tt := range []struct {
		verifier string
		iss      *token.Issuer
	}{{"neutral", f.listed}, {"pinned", f.pinned}} {
		bundle, receipt := f.run(t, tt.iss)
		vb, err := VerifyBundle(ctx, bundle, f.trust())
		if err != nil {
			t.Fatalf("%s: %v", tt.verifier, err)
		}
		if vb.Verifier != tt.verifier {
			t.Errorf("token attributed to %q, want %q", vb.Verifier, tt.verifier)
		}
		if !strings.Contains(strings.Join(vb.Checks, "\n"), "signed by verifier \""+tt.verifier+"\" of the manifest's list (key "+tt.iss.KeyID()+")") {
			t.Errorf("checks do not name the verifier and its key:\n%s", strings.Join(vb.Checks, "\n"))
		}
		if _, err := vb.Open(f.airline); err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyReceipt(ctx, receipt, vb, f.trust()); err != nil {
			t.Fatalf("%s: receipt: %v", tt.verifier, err)
		}
	}
}

// TestVerifierNotListed: a result whose token comes from a verifier the
// manifest does not list is refused, naming the token's key and claimed
// verifier and the manifest's verifiers with their keys.
func TestVerifierNotListed(t *testing.T) {
	f := newTrustFixture(t)
	bundle, receipt := f.run(t, f.stranger)
	_, err := VerifyBundle(context.Background(), bundle, f.trust())
	var ke *token.KeyError
	if !errors.Is(err, ErrUntrusted) || !errors.Is(err, token.ErrInvalid) || !errors.As(err, &ke) {
		t.Fatalf("VerifyBundle = %v, want ErrUntrusted wrapping a token.KeyError", err)
	}
	for _, want := range []string{
		`key "` + f.stranger.KeyID() + `"`, `verifier "stranger verifier (kura)"`, "not a trusted key",
		"the manifest's verifiers: neutral (keys " + f.listed.KeyID() + "); pinned (keys " + f.pinned.KeyID() + ")",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if _, err := VerifyReceipt(context.Background(), receipt, nil, f.trust()); !errors.As(err, &ke) || ke.KeyID != f.stranger.KeyID() {
		t.Errorf("receipt: %v", err)
	}
}

// TestTrustOverride: verifiers the party names replace the manifest's
// list, and need no approval; a listed verifier the party did not name is
// then refused.
func TestTrustOverride(t *testing.T) {
	f := newTrustFixture(t)
	ctx := context.Background()
	bundle, receipt := f.run(t, f.stranger)
	named := Trust{Verifiers: keySet(t, f.stranger), DevMode: true}
	vb, err := VerifyBundle(ctx, bundle, named)
	if err != nil {
		t.Fatal(err)
	}
	if vb.Verifier != namedByYou {
		t.Errorf("verifier %q, want %q", vb.Verifier, namedByYou)
	}
	if _, err := VerifyReceipt(ctx, receipt, vb, named); err != nil {
		t.Fatal(err)
	}
	listed, _ := f.run(t, f.listed)
	_, err = VerifyBundle(ctx, listed, named)
	var ke *token.KeyError
	if !errors.As(err, &ke) || !strings.Contains(err.Error(), "trusted: the verifiers you named") || !strings.Contains(err.Error(), f.stranger.KeyID()) {
		t.Errorf("a listed verifier the party did not name: %v", err)
	}
}

// TestListNeedsApproval: the manifest's list counts only for a party
// whose own approval covers it.
func TestListNeedsApproval(t *testing.T) {
	f := newTrustFixture(t)
	bundle, _ := f.run(t, f.listed)
	stranger, _ := party.Generate("stranger", party.KEMX25519)
	for name, tc := range map[string]struct {
		trust Trust
		want  string
	}{
		"no party":        {Trust{FetchJWKS: f.fetch, DevMode: true}, "counts only for a party whose own approval covers it"},
		"did not approve": {Trust{Party: f.analyst.Card().SigningKey, FetchJWKS: f.fetch, DevMode: true}, `not one you approved: collab: not approved: party "analyst" never approved`},
		"not a party":     {Trust{Party: stranger.Card().SigningKey, FetchJWKS: f.fetch, DevMode: true}, "not one you approved: collab: not approved: no party"},
	} {
		if _, err := VerifyBundle(context.Background(), bundle, tc.trust); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestListKeysUnavailable: a listed verifier whose JWKS is not fetched or
// not reachable contributes no keys, and the refusal says so.
func TestListKeysUnavailable(t *testing.T) {
	f := newTrustFixture(t)
	bundle, _ := f.run(t, f.listed)
	offline := f.trust()
	offline.FetchJWKS = nil
	if _, err := VerifyBundle(context.Background(), bundle, offline); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "neutral (keys at "+f.jwks.URL+"/.well-known/jwks.json, not fetched)") {
		t.Errorf("not fetched: %v", err)
	}
	f.jwks.Close()
	if _, err := VerifyBundle(context.Background(), bundle, f.trust()); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "unavailable") {
		t.Errorf("unreachable: %v", err)
	}
	// The pinned verifier needs no network.
	pinned, _ := f.run(t, f.pinned)
	if _, err := VerifyBundle(context.Background(), pinned, offline); err != nil {
		t.Errorf("pinned key offline: %v", err)
	}
}

// TestLegacyManifest: a run of a format-1 manifest, which lists no
// verifiers, is checked against the verifiers the party names, and only
// those.
func TestLegacyManifest(t *testing.T) {
	f := newTrustFixture(t)
	legacy := *f.manifest
	legacy.Format, legacy.Verifiers = collab.LegacyFormatVersion, nil
	raw, _ := json.Marshal(&legacy)
	c, err := collab.ParseCollaboration([]byte(`{"kura_collaboration":1,"id":"trust-test","versions":[` + string(raw) + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(f.airline, t0); err != nil {
		t.Fatal(err)
	}
	f.manifest = &legacy
	if f.collab, err = c.Marshal(); err != nil {
		t.Fatal(err)
	}
	bundle, _ := f.run(t, f.listed)
	if _, err := VerifyBundle(context.Background(), bundle, f.trust()); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "(format 1) lists no verifiers: name the verifiers you trust yourself") {
		t.Errorf("legacy without named verifiers: %v", err)
	}
	if _, err := VerifyBundle(context.Background(), bundle, Trust{Verifiers: keySet(t, f.listed), DevMode: true}); err != nil {
		t.Errorf("legacy with named verifiers: %v", err)
	}
}
