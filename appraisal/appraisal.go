package appraisal

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/veraison/ear"

	"github.com/kura-cc/kura/attestation"
)

// DefaultPolicy is kura's default appraisal policy in Rego.
//
//go:embed default.rego
var DefaultPolicy string

// ErrPolicy means the policy failed to compile or did not produce a result
// of the documented shape.
var ErrPolicy = errors.New("appraisal policy error")

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

// Appraiser evaluates a prepared appraisal policy. It is safe for concurrent use.
type Appraiser struct {
	query    rego.PreparedEvalQuery
	base     ast.Object // reference and dev_mode, converted once
	policyID string

	// memo holds results by claims digest when the policy is a pure
	// function of its input (it calls no non-deterministic built-in such as
	// time.now_ns or http.send). Evidence from one machine repeats its
	// claims, so most appraisals are lookups.
	memo *memo
}

// memoSize bounds the memo; when full it is emptied and refilled.
const memoSize = 4096

type memo struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*Appraisal
}

func (m *memo) get(k [sha256.Size]byte) *Appraisal {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[k]
}

func (m *memo) put(k [sha256.Size]byte, a *Appraisal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= memoSize {
		clear(m.m)
	}
	m.m[k] = a
}

// New compiles the policy once.
func New(ctx context.Context, cfg Config) (*Appraiser, error) {
	src := cfg.Policy
	if src == "" {
		src = DefaultPolicy
	}
	query, err := rego.New(
		rego.Query("data.kura.appraisal.result"),
		rego.Module("appraisal.rego", src),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	ref, err := cfg.Reference.asMap()
	if err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	refValue, err := ast.InterfaceToValue(ref)
	if err != nil {
		return nil, fmt.Errorf("reference values: %w", err)
	}
	sum := sha256.Sum256([]byte(src))
	pure, err := deterministic(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	var m *memo
	if pure {
		m = &memo{m: make(map[[sha256.Size]byte]*Appraisal)}
	}
	return &Appraiser{
		memo:  m,
		query: query,
		base: ast.NewObject(
			ast.Item(ast.StringTerm("reference"), ast.NewTerm(refValue)),
			ast.Item(ast.StringTerm("dev_mode"), ast.BooleanTerm(cfg.DevMode)),
		),
		policyID: "kura/appraisal@sha256:" + hex.EncodeToString(sum[:8]),
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

// deterministic reports whether a policy calls only deterministic built-ins.
func deterministic(src string) (bool, error) {
	mod, err := ast.ParseModule("appraisal.rego", src)
	if err != nil {
		return false, err
	}
	pure := true
	check := func(op ast.Ref) {
		if b, ok := ast.BuiltinMap[op.String()]; ok && b.Nondeterministic {
			pure = false
		}
	}
	ast.WalkExprs(mod, func(e *ast.Expr) bool {
		if e.IsCall() {
			check(e.Operator())
		}
		return false
	})
	ast.WalkTerms(mod, func(t *ast.Term) bool {
		if c, ok := t.Value.(ast.Call); ok && len(c) > 0 {
			if op, ok := c[0].Value.(ast.Ref); ok {
				check(op)
			}
		}
		return false
	})
	return pure, nil
}

// Appraise evaluates the policy on claims. The claims' report_data is not
// part of the policy input: binding is checked before appraisal and
// report_data differs in every request.
func (a *Appraiser) Appraise(ctx context.Context, claims map[string]any) (*Appraisal, error) {
	input := maps.Clone(claims)
	delete(input, "report_data")
	var key [sha256.Size]byte
	if a.memo != nil {
		// encoding/json sorts map keys, so equal claims give equal bytes.
		data, err := json.Marshal(input)
		if err != nil {
			return nil, fmt.Errorf("%w: claims: %v", ErrPolicy, err)
		}
		key = sha256.Sum256(data)
		if hit := a.memo.get(key); hit != nil {
			return hit.clone(), nil
		}
	}
	got, err := a.eval(ctx, input)
	if err != nil {
		return nil, err
	}
	if a.memo != nil {
		a.memo.put(key, got.clone())
	}
	return got, nil
}

func (a *Appraisal) clone() *Appraisal {
	c := *a
	c.Checks = slices.Clone(a.Checks)
	c.Explain = maps.Clone(a.Explain)
	return &c
}

func (a *Appraiser) eval(ctx context.Context, claims map[string]any) (*Appraisal, error) {
	claimsValue, err := ast.InterfaceToValue(claims)
	if err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrPolicy, err)
	}
	input := a.base.Copy()
	input.Insert(ast.StringTerm("claims"), ast.NewTerm(claimsValue))
	rs, err := a.query.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("%w: policy defined no result for these claims", ErrPolicy)
	}
	// The result is small; a JSON round trip gives strict typing cheaply.
	data, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	var pr policyResult
	if err := json.Unmarshal(data, &pr); err != nil {
		return nil, fmt.Errorf("%w: result has the wrong shape: %v", ErrPolicy, err)
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
