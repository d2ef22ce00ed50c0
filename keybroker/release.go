package keybroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/token"
)

// Attested is a verified attestation token and what the broker derived
// from it.
type Attested struct {
	View *TokenView
	to   *recipient // the TEE key releases are encrypted to
	// Digest is SHA-256 of the token, for the audit trail.
	Digest string
	// Context is the runtime context the evidence bound (for a clean-room
	// worker, its run context).
	Context          []byte
	IssuedAt, Expiry time.Time
	// run is Context parsed, when it is a clean-room run context.
	run *collab.RunContext
}

// fresh checks a verified token's times against the broker's clock.
func (b *Broker) fresh(a *Attested) error {
	now := b.now()
	if now.After(a.Expiry.Add(tokenSkew)) {
		return fmt.Errorf("%w: attestation token expired at %s: attest again", ErrUnauthenticated, a.Expiry.UTC().Format(time.RFC3339))
	}
	if age := now.Sub(a.IssuedAt); age > b.maxTokenAge {
		return fmt.Errorf("%w: token issued %s ago; the limit is %s: attest again", ErrUnauthenticated, age.Round(time.Second), b.maxTokenAge)
	}
	return nil
}

// tokenSkew is the clock skew tolerated on token expiry.
const tokenSkew = 30 * time.Second

// authenticate verifies a token and checks its freshness. Verified tokens
// are remembered by digest until they expire, so a workload fetching many
// resources with one token pays for the signature check once; expiry and
// freshness are checked on every use.
func (b *Broker) authenticate(ctx context.Context, raw []byte) (*Attested, error) {
	sum := sha256.Sum256(raw)
	if a := b.verified.get(sum); a != nil {
		return a, b.fresh(a)
	}
	c, err := b.tokens.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	view, err := tokenView(c)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	if len(c.RuntimePublicKey) == 0 {
		return nil, fmt.Errorf("%w: token binds no TEE public key", ErrUnauthenticated)
	}
	to, err := parseRecipient(c.RuntimePublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	a := &Attested{View: view, to: to, Digest: hex.EncodeToString(sum[:]), Context: c.RuntimeContext, IssuedAt: c.IssuedAt, Expiry: c.Expiry}
	if len(a.Context) > 0 {
		a.run, _ = collab.ParseRunContext(a.Context) // nil unless a run context
	}
	if err := b.fresh(a); err != nil {
		return nil, err
	}
	b.verified.put(sum, a)
	return a, nil
}

// tokenCache remembers verified tokens by digest. It is bounded: when full
// it is emptied and refilled.
type tokenCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*Attested
}

const tokenCacheSize = 10000

func (c *tokenCache) get(k [sha256.Size]byte) *Attested {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *tokenCache) put(k [sha256.Size]byte, a *Attested) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= tokenCacheSize {
		clear(c.m)
	}
	c.m[k] = a
}

// tokenView extracts the cpu0 appraisal a policy reads.
func tokenView(c *token.Claims) (*TokenView, error) {
	cpu, ok := c.Submods["cpu0"]
	if !ok {
		return nil, errors.New("token has no cpu0 appraisal")
	}
	v := &TokenView{Status: cpu.Status.String(), PolicyID: cpu.PolicyID, TrustVector: map[string]int{}, Claims: map[string]any{}}
	for k, claim := range cpu.TrustVector.AsMap() {
		if claim != 0 {
			v.TrustVector[k] = int(claim)
		}
	}
	for k, val := range cpu.Evidence {
		if k != "runtime_data" {
			v.Claims[k] = val
		}
	}
	v.TEE, _ = cpu.Evidence["tee"].(string)
	v.Insecure, _ = cpu.Evidence["insecure"].(bool)
	if c.Result != nil && c.Result.VerifierID != nil && c.Result.VerifierID.Build != nil {
		v.Issuer = *c.Result.VerifierID.Build
	}
	return v, nil
}

// Release decides whether the attested workload may have the resource at
// path and, if so, returns it as a flattened JWE to the workload's TEE key.
// collaboration is the collaboration file a clean-room run presents for a
// dataset key (docs/spec/cleanroom.md §3), nil otherwise. Every decision is
// recorded in the audit trail before Release returns.
//
// The returned sequence number is the decision's place in the audit trail
// (and its broker_seq in the transparency log), also for refusals.
func (b *Broker) Release(ctx context.Context, a *Attested, path string, query map[string]string, collaboration []byte, requester string) ([]byte, int64, error) {
	rec := &store.AuditRecord{Resource: path, Requester: requester}
	if a != nil {
		rec.TokenDigest, rec.TEE = a.Digest, a.View.TEE
		rec.Measurement, _ = a.View.Claims["measurement"].(string)
		if a.run != nil {
			// The run that asked, as its attestation says: for a
			// release, checkRun has matched it to the collaboration.
			rec.Collaboration, rec.ManifestHash, rec.Analysis, rec.RunID = a.run.Collaboration, a.run.ManifestHash, a.run.Analysis, a.run.RunID
		}
	}
	if collaboration != nil {
		// A run's release is decided and recorded under one lock, so that
		// the runs counted against an analysis's max_runs include every
		// release this broker made (replicas of one broker can still race;
		// docs/spec/keybroker.md §7).
		b.runMu.Lock()
		defer b.runMu.Unlock()
	}
	out, err := b.release(ctx, a, path, query, collaboration, rec)
	if err != nil {
		rec.Decision, rec.Reason = "refused", err.Error()
	} else {
		rec.Decision, rec.Reason = "released", "policy allowed"
	}
	if aerr := b.record(ctx, rec); aerr != nil {
		// A release that cannot be recorded does not happen.
		return nil, 0, fmt.Errorf("record decision: %w", aerr)
	}
	return out, rec.Seq, err
}

func (b *Broker) release(ctx context.Context, a *Attested, path string, query map[string]string, collaboration []byte, rec *store.AuditRecord) ([]byte, error) {
	req, err := ParsePath(path)
	if err != nil {
		return nil, err
	}
	req.Query = query
	if a == nil {
		return nil, fmt.Errorf("%w: no session or token", ErrUnauthenticated)
	}
	r, found, err := b.resources.get(ctx, path)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	var run *RunView
	if r.Metadata[MetaKind] == KindDatasetKey || collaboration != nil {
		if run, err = b.checkRun(ctx, a, r, path, collaboration); err != nil {
			return nil, err
		}
		rec.Epsilon = run.Epsilon // what the run spends once released
		if err := b.checkRunLimits(ctx, run); err != nil {
			return nil, err
		}
		if err := b.checkBudget(ctx, run, path); err != nil {
			return nil, err
		}
	}
	if err := checkTimePolicy(r, query); err != nil {
		return nil, err
	}
	scope, src, err := b.policyForResource(ctx, req, r)
	if err != nil {
		return nil, err
	}
	d, err := b.policies.evaluate(ctx, scope, src, &PolicyInput{
		Token:    a.View,
		Request:  req,
		Resource: &ResourceView{Version: r.Version, Metadata: r.Metadata},
		Run:      run,
		DevMode:  b.devMode,
	}, nil)
	if err != nil {
		return nil, err
	}
	rec.PolicyID = d.PolicyID
	if !d.Allow {
		return nil, fmt.Errorf("%w: %s", ErrDenied, strings.Join(d.Deny, "; "))
	}
	value, err := b.unseal(ctx, r)
	if err != nil {
		return nil, err
	}
	defer clear(value)
	return a.to.encrypt(value)
}

// checkRunLimits refuses a run whose collaboration's approvals lapsed, or
// past its analysis's max_runs: counted from this broker's audit trail,
// runs that already got a key here, the asking run aside (a run fetches
// one key per dataset, and may retry).
func (b *Broker) checkRunLimits(ctx context.Context, run *RunView) error {
	if run.Expires != "" {
		if t, err := time.Parse(time.RFC3339, run.Expires); err == nil && !b.now().Before(t) {
			return fmt.Errorf("%w: the approvals of collaboration %s lapsed at %s: its parties must approve a new version", ErrDenied, run.Collaboration, run.Expires)
		}
	}
	if run.MaxRuns > 0 {
		n, err := b.store.CountRuns(ctx, run.Collaboration, run.Analysis, run.RunID)
		if err != nil {
			return err
		}
		if n >= run.MaxRuns {
			return fmt.Errorf("%w: analysis %q of collaboration %s may run %d time(s), and %d run(s) already got keys from this broker", ErrDenied, run.Analysis, run.Collaboration, run.MaxRuns, n)
		}
	}
	return nil
}

func (b *Broker) policyForResource(ctx context.Context, req RequestView, r *store.Resource) (scope, src string, err error) {
	if r.PolicyID != "" {
		src, found, err := b.stored.get(ctx, r.PolicyID)
		if err == nil && !found {
			// Not store.ErrNotFound: the resource exists, and a policy
			// bound to it that is gone is its owner's problem (500), not
			// the workload's (404).
			err = errors.New("no such policy")
		}
		if err != nil {
			return "", "", fmt.Errorf("policy %s bound to %s: %w", r.PolicyID, r.Path, err)
		}
		return r.PolicyID, src, nil
	}
	return b.policyFor(ctx, req)
}

// record stores an audit record durably, hands it to the sink and logs it.
func (b *Broker) record(ctx context.Context, rec *store.AuditRecord) error {
	rec.Time = b.now().UTC()
	seq, err := b.store.AppendAudit(ctx, rec)
	if err != nil {
		return err
	}
	rec.Seq = seq
	if b.audit != nil {
		if err := b.audit.Record(ctx, rec); err != nil {
			return err
		}
	}
	level := slog.LevelInfo
	if rec.Decision != "released" {
		level = slog.LevelWarn
	}
	if !b.log.Enabled(ctx, level) {
		return nil
	}
	attrs := make([]slog.Attr, 0, 17)
	attrs = append(attrs, slog.String("decision", rec.Decision), slog.String("resource", rec.Resource), slog.String("reason", rec.Reason),
		slog.String("policy", rec.PolicyID), slog.String("tee", rec.TEE), slog.String("measurement", rec.Measurement), slog.String("requester", rec.Requester),
		slog.String("token_sha256", rec.TokenDigest), slog.Int64("audit_seq", rec.Seq))
	if rec.RunID != "" {
		attrs = append(attrs, slog.String("collaboration", rec.Collaboration), slog.String("manifest_hash", rec.ManifestHash), slog.String("analysis", rec.Analysis), slog.String("run_id", rec.RunID))
		if rec.Epsilon != "" {
			attrs = append(attrs, slog.String("epsilon", rec.Epsilon))
		}
	}
	b.log.LogAttrs(ctx, level, "release decision", attrs...)
	return nil
}
