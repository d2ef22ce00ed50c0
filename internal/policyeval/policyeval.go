// Package policyeval prepares a Rego query once and evaluates it per
// request, memoising the results of pure policies: a policy that calls no
// non-deterministic built-in (time.now_ns, http.send, rand.intn, …) is a
// function of its input, so equal inputs give equal results. Appraisal and
// release policies both evaluate through it.
package policyeval

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// memoSize bounds the memo; when full it is emptied and refilled.
const memoSize = 4096

// Query is a prepared Rego query. It is safe for concurrent use.
type Query struct {
	prepared rego.PreparedEvalQuery
	pure     bool

	mu   sync.Mutex
	memo map[[sha256.Size]byte][]byte // input digest -> JSON result
}

// Prepare compiles module src (named filename in errors) for query.
func Prepare(ctx context.Context, query, filename, src string) (*Query, error) {
	pure, err := deterministic(filename, src)
	if err != nil {
		return nil, err
	}
	pq, err := rego.New(rego.Query(query), rego.Module(filename, src)).PrepareForEval(ctx)
	if err != nil {
		return nil, err
	}
	return &Query{prepared: pq, pure: pure, memo: map[[sha256.Size]byte][]byte{}}, nil
}

// Pure reports whether results are memoised.
func (q *Query) Pure() bool { return q.pure }

// Eval evaluates the query on input (any JSON-encodable value) and decodes
// its single result into out. A query with no result is an error.
func (q *Query) Eval(ctx context.Context, input, out any) error {
	return q.EvalTrace(ctx, input, out, nil)
}

// EvalTrace is Eval that writes OPA's evaluation trace to trace when it is
// not nil; traced evaluations bypass the memo.
func (q *Query) EvalTrace(ctx context.Context, input, out any, trace io.Writer) error {
	in, err := json.Marshal(input)
	if err != nil {
		return fmt.Errorf("policy input: %w", err)
	}
	key := sha256.Sum256(in)
	if q.pure && trace == nil {
		q.mu.Lock()
		hit, ok := q.memo[key]
		q.mu.Unlock()
		if ok {
			return json.Unmarshal(hit, out)
		}
	}
	value, err := ast.ValueFromReader(bytes.NewReader(in))
	if err != nil {
		return err
	}
	opts := []rego.EvalOption{rego.EvalParsedInput(value)}
	var tracer *topdown.BufferTracer
	if trace != nil {
		tracer = topdown.NewBufferTracer()
		opts = append(opts, rego.EvalQueryTracer(tracer))
	}
	rs, err := q.prepared.Eval(ctx, opts...)
	if tracer != nil {
		topdown.PrettyTraceWithLocation(trace, *tracer)
	}
	if err != nil {
		return err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return fmt.Errorf("the policy defined no result for this input")
	}
	result, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		return err
	}
	if q.pure {
		q.mu.Lock()
		if len(q.memo) >= memoSize {
			clear(q.memo)
		}
		q.memo[key] = result
		q.mu.Unlock()
	}
	return json.Unmarshal(result, out)
}

// deterministic reports whether a module calls only deterministic built-ins.
func deterministic(filename, src string) (bool, error) {
	mod, err := ast.ParseModule(filename, src)
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
