package keybroker

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"fmt"
	"io"
	"sync"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/policyeval"
)

// DefaultReleasePolicy is the release policy used when neither the resource,
// its repository nor the broker has one.
//
//go:embed default_release.rego
var DefaultReleasePolicy string

// ErrBadPolicy means a release policy does not compile or does not define
// data.kura.release with allow and deny. Its kind is Internal: a stored
// policy that fails at release time is its owner's problem, never told to
// the workload (500); SetPolicy wraps it in ErrBadRequest for the owner.
var ErrBadPolicy = fault.New(ErrKeyBroker, fault.Internal, "bad release policy")

// PolicyInput is what a release policy sees (docs/spec/keybroker.md §5).
type PolicyInput struct {
	Token    *TokenView     `json:"token,omitempty"`
	Request  RequestView    `json:"request"`
	Resource *ResourceView  `json:"resource,omitempty"`
	Run      *RunView       `json:"run,omitempty"` // a clean-room run asking for a dataset key
	DevMode  bool           `json:"dev_mode"`
	Extra    map[string]any `json:"extra,omitempty"`
}

// TokenView is the part of a verified attestation token a policy reads.
type TokenView struct {
	Issuer      string         `json:"issuer"` // verifier key id
	TEE         string         `json:"tee"`
	Status      string         `json:"status"`
	TrustVector map[string]int `json:"trust_vector"`
	PolicyID    string         `json:"policy_id"`
	Claims      map[string]any `json:"claims"`
	Insecure    bool           `json:"insecure"`
}

// RequestView describes the resource request.
type RequestView struct {
	Resource   string            `json:"resource"` // repository/type/tag
	Repository string            `json:"repository"`
	Type       string            `json:"type"`
	Tag        string            `json:"tag"`
	Query      map[string]string `json:"query,omitempty"`
}

// ResourceView is what a policy may know about the stored resource: never
// its value.
type ResourceView struct {
	Version  int64             `json:"version"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Decision is a policy's verdict.
type Decision struct {
	Allow    bool     `json:"allow"`
	Deny     []string `json:"deny"`
	PolicyID string   `json:"policy_id"` // scope@sha256 prefix of the Rego source
}

// policies compiles release policies once per source text.
type policies struct {
	mu       sync.Mutex
	prepared map[[sha256.Size]byte]*policyeval.Query
}

func newPolicies() *policies {
	return &policies{prepared: map[[sha256.Size]byte]*policyeval.Query{}}
}

// compile returns the prepared query for src, compiling it on first use.
func (p *policies) compile(ctx context.Context, src string) (*policyeval.Query, error) {
	return p.compileSum(ctx, src, sha256.Sum256([]byte(src)))
}

// compileSum is compile given key, the SHA-256 of src.
func (p *policies) compileSum(ctx context.Context, src string, key [sha256.Size]byte) (*policyeval.Query, error) {
	p.mu.Lock()
	q, ok := p.prepared[key]
	p.mu.Unlock()
	if ok {
		return q, nil
	}
	q, err := policyeval.Prepare(ctx, "data.kura.release", "release.rego", src)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPolicy, err)
	}
	p.mu.Lock()
	if len(p.prepared) > 1024 {
		clear(p.prepared)
	}
	p.prepared[key] = q
	p.mu.Unlock()
	return q, nil
}

// evaluate runs a release policy on input; a non-nil trace receives OPA's
// evaluation trace.
func (p *policies) evaluate(ctx context.Context, scope, src string, input *PolicyInput, trace io.Writer) (*Decision, error) {
	sum := sha256.Sum256([]byte(src))
	q, err := p.compileSum(ctx, src, sum)
	if err != nil {
		return nil, err
	}
	d := &Decision{PolicyID: fmt.Sprintf("%s@sha256:%x", scope, sum[:8])}
	var res struct {
		Allow *bool    `json:"allow"`
		Deny  []string `json:"deny"`
	}
	if err := q.EvalTrace(ctx, input, &res, trace); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadPolicy, d.PolicyID, err)
	}
	if res.Allow == nil {
		return nil, fmt.Errorf("%w: %s: data.kura.release.allow must be a boolean", ErrBadPolicy, d.PolicyID)
	}
	d.Allow, d.Deny = *res.Allow, res.Deny
	if !d.Allow && len(d.Deny) == 0 {
		d.Deny = []string{"the release policy did not allow this request"}
	}
	return d, nil
}

// CheckPolicy compiles src and reports whether it is a usable release policy.
func CheckPolicy(ctx context.Context, src string) error {
	_, err := newPolicies().compile(ctx, src)
	return err
}

// EvaluatePolicy evaluates src on input once, for `kura policy eval`; a
// non-nil trace receives OPA's evaluation trace.
func EvaluatePolicy(ctx context.Context, src string, input *PolicyInput, trace io.Writer) (*Decision, error) {
	return newPolicies().evaluate(ctx, "cli", src, input, trace)
}
