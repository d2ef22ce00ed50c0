package coordinator_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/veraison/ear"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/token"
)

// runFixture is a coordinator with a run queue, trusting one verifier's
// tokens, with two registered workers, holding the example collaboration
// approved by the approvers.
type runFixture struct {
	*fixture
	issuer *token.Issuer
	w1, w2 *coordinator.WorkerClient
	now    time.Time
}

func newRunFixture(t *testing.T, approvers ...string) *runFixture {
	return newRunFixtureWith(t, nil, approvers...)
}

func newRunFixtureWith(t *testing.T, adjust func(*coordinator.Config), approvers ...string) *runFixture {
	t.Helper()
	ctx := context.Background()
	rf := &runFixture{now: time.Now(), issuer: newIssuer(t)}
	tokens, err := token.NewVerifier(token.VerifierConfig{Keys: mustKeys(t, rf.issuer)})
	if err != nil {
		t.Fatal(err)
	}
	rf.fixture = newFixtureWith(t, func(cfg *coordinator.Config) {
		cfg.Runs = cfg.Store.(coordinator.Runs)
		cfg.Registrations = cfg.Nonces.(coordinator.Registrations)
		cfg.Tokens = tokens
		cfg.Lease = time.Minute
		cfg.Now = func() time.Time { return rf.now }
		if adjust != nil {
			adjust(cfg)
		}
	})
	rf.w1, rf.w2 = rf.newWorker(t), rf.newWorker(t)
	for _, w := range []*coordinator.WorkerClient{rf.w1, rf.w2} {
		if _, err := w.Register(ctx, rf.token(t, w.Key.Public().(ed25519.PublicKey), coordinator.WorkerSigningContext, ear.TrustTierAffirming, "snp")); err != nil {
			t.Fatal(err)
		}
	}
	f := rf.fixture
	for _, name := range approvers {
		f.approve(t, name)
	}
	if _, err := f.client.Push(ctx, f.file(t)); err != nil {
		t.Fatal(err)
	}
	return rf
}

func newIssuer(t *testing.T) *token.Issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: "test verifier"})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mustKeys(t *testing.T, iss *token.Issuer) jwk.Set {
	t.Helper()
	set, err := token.ParseJWKS(iss.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// newWorker is an unregistered worker with a fresh key.
func (rf *runFixture) newWorker(t *testing.T) *coordinator.WorkerClient {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &coordinator.WorkerClient{Client: coordinator.Client{BaseURL: rf.srv.URL, HTTP: rf.srv.Client()}, Key: k}
}

// token is what a verifier would issue for evidence from tee binding pub
// and ctx, appraised as status.
func (rf *runFixture) token(t *testing.T, pub ed25519.PublicKey, ctx string, status ear.TrustTier, tee string) []byte {
	t.Helper()
	tok, err := rf.issuer.Issue(&token.Claims{
		Nonce: bytes.Repeat([]byte{7}, 32),
		Submods: map[string]token.Submod{"cpu0": {Status: status, PolicyID: "test",
			Evidence: map[string]any{"tee": tee, "measurement": strings.Repeat("ab", 48), "insecure": tee == "sim"}}},
		RuntimePublicKey: pub, RuntimeContext: []byte(ctx),
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestRunQueueAPI: a party allowed to run an analysis submits it; one
// worker claims it, renews and finishes it; another worker can neither
// claim it while it is held nor finish it; a run whose lease lapsed is
// claimed again by another worker, and the first can no longer finish it.
func TestRunQueueAPI(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t, "airline", "carrier")
	an := f.col.Current().Analyses[0].ID
	f.client.Identity = f.ids["analyst"]
	r, err := f.client.SubmitRun(ctx, f.col.ID, an)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.RunQueued || r.SubmittedBy != f.ids["analyst"].Card().Fingerprint || len(r.ID) != 32 {
		t.Fatalf("submitted run %+v", r)
	}
	got, err := f.w1.Claim(ctx)
	if err != nil || got == nil || got.ID != r.ID || got.State != store.RunRunning || got.Worker != "snp-"+coordinator.WorkerKeyID(f.w1.Key.Public().(ed25519.PublicKey))[:8] || got.Attempts != 1 {
		t.Fatalf("w1 claims %+v, %v", got, err)
	}
	if none, err := f.w2.Claim(ctx); err != nil || none != nil {
		t.Fatalf("w2 claims a held run: %+v, %v", none, err)
	}
	if err := f.w1.Renew(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.w2.Finish(ctx, r.ID, coordinator.FinishRequest{State: store.RunFailed, Error: "not mine"}); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("w2 finishes w1's run: %v, want 409", err)
	}
	// The lease lapses: w2 takes the run over; w1 can no longer finish it.
	f.now = f.now.Add(2 * time.Minute)
	again, err := f.w2.Claim(ctx)
	if err != nil || again == nil || again.ID != r.ID || again.Attempts != 2 || again.Worker == got.Worker {
		t.Fatalf("w2 claims the lapsed run: %+v, %v", again, err)
	}
	if err := f.w1.Finish(ctx, r.ID, coordinator.FinishRequest{State: store.RunCompleted, Result: strings.Repeat("ab", 32)}); err == nil {
		t.Error("w1 finished a run w2 took over")
	}
	done := coordinator.FinishRequest{State: store.RunCompleted, Result: strings.Repeat("ab", 32), Receipt: strings.Repeat("cd", 32)}
	if err := f.w2.Finish(ctx, r.ID, done); err != nil {
		t.Fatal(err)
	}
	final, err := f.client.GetRun(ctx, r.ID)
	if err != nil || final.State != store.RunCompleted || final.Result != done.Result || final.Receipt != done.Receipt {
		t.Fatalf("finished run %+v, %v", final, err)
	}
	runs, err := f.client.ListRuns(ctx, f.col.ID)
	if err != nil || len(runs) != 1 || runs[0].ID != r.ID {
		t.Errorf("list: %v, %v", runs, err)
	}
}

// TestRunQueueRefusals: who may not submit or claim, and what may not be
// submitted.
func TestRunQueueRefusals(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t, "airline", "carrier")
	an := f.col.Current().Analyses[0].ID
	outsider, err := party.Generate("outsider", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	submit := func(id *party.Identity, collabID, analysis string) error {
		c := *f.client
		c.Identity = id
		_, err := c.SubmitRun(ctx, collabID, analysis)
		return err
	}
	for name, tc := range map[string]struct {
		err  error
		want string
		kind error
	}{
		"a non-party":         {submit(outsider, f.col.ID, an), "401", fault.Unauthenticated},
		"an unknown analysis": {submit(f.ids["airline"], f.col.ID, "nope"), "409", fault.Conflict},
		"an unknown collab":   {submit(f.ids["airline"], "nope", an), "404", fault.NotFound},
		// pings_by_region reads only the carrier's towers: the airline
		// is neither its analyst nor an owner of what it reads.
		"another owner's analysis": {submit(f.ids["airline"], f.col.ID, "pings_by_region"), "nor an owner of the data", fault.Denied},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) || !errors.Is(tc.err, tc.kind) {
			t.Errorf("%s: %v, want %s (%v)", name, tc.err, tc.want, tc.kind)
		}
	}
	if _, err := f.client.ListRuns(ctx, ""); !errors.Is(err, fault.BadRequest) {
		t.Errorf("listing every collaboration's runs: %v, want 400", err)
	}
	// A signed submission replayed, and one too large to read.
	body := []byte(`{"collaboration":"` + f.col.ID + `","analysis":"` + an + `"}`)
	analyst := f.ids["analyst"]
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/runs", bytes.NewReader(body))
	httpsig.Sign(req, body, coordinator.RunSigningContext, analyst.Card().Fingerprint, analyst.Sign, time.Now())
	replay := req.Clone(ctx)
	for i, want := range []int{http.StatusCreated, http.StatusUnauthorized} {
		r := req
		if i == 1 {
			r = replay
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if resp, err := f.srv.Client().Do(r); err != nil || resp.StatusCode != want {
			t.Errorf("submission %d: %v %v, want %d", i+1, resp.StatusCode, err, want)
		}
	}
	big := bytes.Repeat([]byte(" "), 17<<10)
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/v1/runs", bytes.NewReader(big))
	httpsig.Sign(req, big, coordinator.RunSigningContext, analyst.Card().Fingerprint, analyst.Sign, time.Now())
	if resp, err := f.srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized submission: %v %v, want 413", resp.StatusCode, err)
	}
	// Unsigned submission and a claim by a worker that did not register.
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/v1/runs", bytes.NewReader([]byte(`{"collaboration":"x","analysis":"y"}`)))
	if resp, err := f.srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned submission: %v %v", resp.StatusCode, err)
	}
	if _, err := f.newWorker(t).Claim(ctx); !errors.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "unregistered-worker") {
		t.Errorf("a claim by an unregistered worker: %v", err)
	}
	// A party signing as a worker is refused too.
	body = []byte("{}")
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/v1/runs/claim", bytes.NewReader(body))
	airline := f.ids["airline"]
	httpsig.Sign(req, body, coordinator.WorkerSigningContext, airline.Card().Fingerprint, airline.Sign, time.Now())
	if resp, err := f.srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a party claiming as a worker: %v %v", resp.StatusCode, err)
	}
}

// TestRunNeedsApprovals: a run is refused, naming who has not approved,
// until every owner of the data it reads has approved the current version.
func TestRunNeedsApprovals(t *testing.T) {
	f := newRunFixture(t, "airline")
	f.client.Identity = f.ids["analyst"]
	_, err := f.client.SubmitRun(context.Background(), f.col.ID, "visitors_by_age")
	if !errors.Is(err, fault.Conflict) || !strings.Contains(err.Error(), "approv") {
		t.Fatalf("a run the carrier has not approved: %v", err)
	}
	t.Log(err)
}

// TestWorkerRegistration: a worker registers only with a token from a
// trusted verifier that appraised its evidence as affirming or warning,
// bound its key under the worker context, and came with a request signed
// by that key; a simulated TEE registers only in dev mode; a lapsed
// registration is refused until the worker registers again.
func TestWorkerRegistration(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t, "airline", "carrier")
	w := f.newWorker(t)
	pub := w.Key.Public().(ed25519.PublicKey)
	other := f.newWorker(t).Key.Public().(ed25519.PublicKey)
	stranger := &runFixture{fixture: f.fixture, issuer: newIssuer(t)}
	for name, tc := range map[string]struct {
		tok  []byte
		want string
	}{
		"an untrusted verifier":     {stranger.token(t, pub, coordinator.WorkerSigningContext, ear.TrustTierAffirming, "snp"), "worker-refused"},
		"another context":           {f.token(t, pub, "kura-run-v1", ear.TrustTierAffirming, "snp"), "does not bind"},
		"another key":               {f.token(t, other, coordinator.WorkerSigningContext, ear.TrustTierAffirming, "snp"), "401"},
		"contraindicated evidence":  {f.token(t, pub, coordinator.WorkerSigningContext, ear.TrustTierContraindicated, "snp"), "contraindicated"},
		"a simulated TEE (not dev)": {f.token(t, pub, coordinator.WorkerSigningContext, ear.TrustTierWarning, "sim"), "INSECURE"},
		"not a token":               {[]byte("eyJ.garbage"), "worker-refused"},
	} {
		if _, err := w.Register(ctx, tc.tok); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
	if _, err := w.Claim(ctx); !errors.Is(err, fault.Unauthenticated) {
		t.Errorf("a refused worker claims: %v", err)
	}
	reg, err := w.Register(ctx, f.token(t, pub, coordinator.WorkerSigningContext, ear.TrustTierWarning, "tdx"))
	if err != nil || reg.TEE != "tdx" || reg.Status != "warning" || !bytes.Equal(reg.PublicKey, pub) || len(reg.Measurement) != 96 {
		t.Fatalf("registration: %+v, %v", reg, err)
	}
	if _, err := w.Claim(ctx); err != nil {
		t.Errorf("a registered worker claims: %v", err)
	}

	// In dev mode the simulated TEE registers; a registration that lapsed
	// is refused.
	dev := newRunFixtureWith(t, func(cfg *coordinator.Config) { cfg.DevMode, cfg.Registration = true, time.Second })
	sim := dev.newWorker(t)
	if _, err := sim.Register(ctx, dev.token(t, sim.Key.Public().(ed25519.PublicKey), coordinator.WorkerSigningContext, ear.TrustTierWarning, "sim")); err != nil {
		t.Errorf("a simulated TEE in dev mode: %v", err)
	}
	time.Sleep(2 * time.Second)
	if _, err := sim.Claim(ctx); !errors.Is(err, fault.Unauthenticated) || !strings.Contains(err.Error(), "unregistered-worker") {
		t.Errorf("a lapsed registration claims: %v", err)
	}
}

// TestRunLimits: the coordinator refuses a run past the analysis's
// max_runs (failed runs do not count) or after the manifest's approvals
// lapsed, as the key brokers would, naming the limit.
func TestRunLimits(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t, "airline", "carrier")
	var next collab.Manifest
	data, err := json.Marshal(f.col.Current())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &next); err != nil {
		t.Fatal(err)
	}
	next.Previous = f.col.Current().Hash()
	next.Analysis("visitors_by_age").MaxRuns = 2
	next.Expires = f.now.Add(3 * time.Minute).UTC().Truncate(time.Second).Format(time.RFC3339)
	if err := f.col.AddVersion(&next); err != nil {
		t.Fatal(err)
	}
	f.approve(t, "airline")
	f.approve(t, "carrier")
	if _, err := f.client.Push(ctx, f.file(t)); err != nil {
		t.Fatal(err)
	}
	f.client.Identity = f.ids["analyst"]
	first, err := f.client.SubmitRun(ctx, f.col.ID, "visitors_by_age")
	if err != nil {
		t.Fatal(err)
	}
	// The first run fails: it does not count.
	if got, err := f.w1.Claim(ctx); err != nil || got.ID != first.ID {
		t.Fatalf("claim: %+v, %v", got, err)
	}
	if err := f.w1.Finish(ctx, first.ID, coordinator.FinishRequest{State: store.RunFailed, Error: "no key"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := f.client.SubmitRun(ctx, f.col.ID, "visitors_by_age"); err != nil {
			t.Fatal(err)
		}
	}
	_, err = f.client.SubmitRun(ctx, f.col.ID, "visitors_by_age")
	if !errors.Is(err, fault.Denied) || !strings.Contains(err.Error(), "run-limit") || !strings.Contains(err.Error(), "allows 2 runs") {
		t.Errorf("a third run: %v", err)
	}
	f.now = f.now.Add(4 * time.Minute)
	_, err = f.client.SubmitRun(ctx, f.col.ID, "visitors_sql")
	if !errors.Is(err, fault.Denied) || !strings.Contains(err.Error(), "lapsed at "+next.Expires) {
		t.Errorf("a run after the approvals lapsed: %v", err)
	}
}
