package appraisal

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"maps"

	"github.com/veraison/ear"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/policyeval"
)

// DefaultPolicy is kura's default appraisal policy in Rego.
//
//go:embed default.rego
var DefaultPolicy string

// ErrPolicy means the policy failed to compile or did not produce a result
// of the documented shape.
var ErrPolicy = fault.New(nil, fault.Internal, "appraisal policy error")

// Config configures an Appraiser.
type Config struct {
	// Policy is Rego source defining data.kura.appraisal.result.
	// Empty uses DefaultPolicy.
	Policy string
	// Reference holds the reference values; nil means none.
	Reference *ReferenceValues
	// DevMode lets the default policy accept the INSECURE simulated TEE.
	DevMode bool
}

// Appraiser evaluates a prepared appraisal policy. It is safe for concurrent
// use. Results of pure policies are memoised by input: evidence from one
// machine repeats its claims, so most appraisals are lookups.
type Appraiser struct {
	query     *policyeval.Query
	reference map[string]any
	devMode   bool
	policyID  string
}

// New compiles the policy once.
func New(ctx context.Context, cfg Config) (*Appraiser, error) {
	src := cfg.Policy
	if src == "" {
		src = DefaultPolicy
	}
	query, err := policyeval.Prepare(ctx, "data.kura.appraisal.result", "appraisal.rego", src)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	ref, err := cfg.Reference.AsMap()
	if err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	sum := sha256.Sum256([]byte(src))
	return &Appraiser{
		query:     query,
		reference: ref,
		devMode:   cfg.DevMode,
		policyID:  "kura/appraisal@sha256:" + hex.EncodeToString(sum[:8]),
	}, nil
}

// PolicyID names the policy: its hash, for the EAR's appraisal-policy-id.
func (a *Appraiser) PolicyID() string { return a.policyID }

// Appraisal is the outcome of appraising one TEE's claims.
type Appraisal struct {
	Status      ear.TrustTier       `json:"status"`
	TrustVector ear.TrustVector     `json:"trust_vector"`
	Checks      []attestation.Check `json:"checks"`
	// Explain says, for each trust-vector claim, why it got its value.
	Explain  map[string]string `json:"explain"`
	PolicyID string            `json:"policy_id"`
}

// Affirming reports whether the appraisal affirms the evidence.
func (a *Appraisal) Affirming() bool { return a.Status == ear.TrustTierAffirming }

// Failed reports whether any policy check failed.
func (a *Appraisal) Failed() bool {
	for _, c := range a.Checks {
		if c.Status == attestation.Failed {
			return true
		}
	}
	return false
}

// policyResult is the documented shape of data.kura.appraisal.result.
type policyResult struct {
	TrustVector map[string]int      `json:"trust_vector"`
	Checks      []attestation.Check `json:"checks"`
	Explain     map[string]string   `json:"explain"`
}

// Appraise evaluates the policy on claims. The claims' report_data is not
// part of the policy input: binding is checked before appraisal and
// report_data differs in every request.
func (a *Appraiser) Appraise(ctx context.Context, claims map[string]any) (*Appraisal, error) {
	in := maps.Clone(claims)
	delete(in, "report_data")
	var pr policyResult
	input := map[string]any{"claims": in, "reference": a.reference, "dev_mode": a.devMode}
	if err := a.query.Eval(ctx, input, &pr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	if pr.TrustVector == nil {
		return nil, fmt.Errorf("%w: result has no trust_vector", ErrPolicy)
	}
	tv, err := ear.ToTrustVector(toAny(pr.TrustVector))
	if err != nil || tv == nil {
		return nil, fmt.Errorf("%w: trust vector: %v", ErrPolicy, err)
	}
	return &Appraisal{
		Status:      status(tv),
		TrustVector: *tv,
		Checks:      pr.Checks,
		Explain:     pr.Explain,
		PolicyID:    a.policyID,
	}, nil
}

func toAny(m map[string]int) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// status is the worst tier among the claims that were made; with no claim
// at all it is none.
func status(tv *ear.TrustVector) ear.TrustTier {
	worst := ear.TrustTierNone
	for _, c := range tv.AsMap() {
		tier := c.GetTier()
		if tier == ear.TrustTierNone {
			continue
		}
		if worst == ear.TrustTierNone || tier > worst {
			worst = tier
		}
	}
	return worst
}
