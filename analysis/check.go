package analysis

import (
	"context"
	"errors"
	"fmt"

	"github.com/kura-cc/kura/collab"
)

// Check is the static check of a manifest's analyses: it runs, without any
// data, the checks Engine.Run applies to each analysis before it reads a
// row (docs/spec/analysis.md §4), so that `kura collab create`, `kura
// collab approve` and the coordinator refuse an analysis before anyone
// signs it and before a key broker releases a key. Custom SQL is parsed by
// an in-memory DuckDB database that holds no data and is locked down
// (§6) before it parses anything; it is opened only when m has custom SQL.
//
// m must be a validated manifest (collab.New, collab.ParseCollaboration):
// the check reads its datasets' schemas and output policies. Every analysis
// is checked; the error joins one error per refused analysis, each wrapping
// ErrUnsafeAnalysis and the error the worker would return (ErrUnsupportedSQL,
// ErrIdentityOutput, ErrPolicyViolation or ErrInvalidAnalysis), with the
// analysis id and the offending expression or column in its text. An error
// that is not a refusal (DuckDB could not be opened) wraps neither.
func Check(ctx context.Context, m *collab.Manifest) error {
	if m == nil {
		return fmt.Errorf("%w: %w: no manifest", ErrUnsafeAnalysis, ErrInvalidAnalysis)
	}
	var (
		e    *Engine
		errs []error
	)
	defer func() {
		if e != nil {
			e.Close()
		}
	}()
	for i := range m.Analyses {
		a, ep, err := lookup(m, m.Analyses[i].ID)
		if err == nil && a.Kind == collab.KindSQL && e == nil {
			if e, err = New(ctx, Config{Threads: 1}); err != nil {
				return err
			}
			if err := e.lockDown(ctx); err != nil {
				return err
			}
		}
		if err == nil {
			// e is nil when m has no custom SQL: compiling a declared
			// analysis needs no database.
			_, _, err = e.compile(ctx, m, a, newPolicy(ep))
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, ErrAnalysis):
			return err
		default:
			errs = append(errs, fmt.Errorf("%w: %w", ErrUnsafeAnalysis, err))
		}
	}
	return errors.Join(errs...)
}

// WeakMinDistinctIdentities is the min_distinct_identities below which
// PolicyWarnings calls an output policy weak. kura recommends 10 or more
// (docs/spec/manifest.md §2).
const WeakMinDistinctIdentities = 5

// PolicyWarnings lists what is weak, though valid, in the output policies
// of m's datasets: a min_distinct_identities below
// WeakMinDistinctIdentities, and a dataset that declares no identity
// column, whose threshold then counts rows rather than people. They are
// warnings for the people about to create or sign the manifest, not
// refusals.
func PolicyWarnings(m *collab.Manifest) []string {
	if m == nil {
		return nil
	}
	var out []string
	for _, d := range m.Datasets {
		if n := d.OutputPolicy.MinDistinctIdentities; n < WeakMinDistinctIdentities {
			out = append(out, fmt.Sprintf("dataset %q (owner %s): min_distinct_identities %d is below %d: an output row may describe as few as %d people (10 or more recommended)",
				d.ID, d.Owner, n, WeakMinDistinctIdentities, max(n, 1)))
		}
		if s := d.Descriptor.Schema; s != nil && len(identityColumns(s)) == 0 {
			out = append(out, fmt.Sprintf("dataset %q (owner %s): no identity column: its min_distinct_identities counts rows, not people", d.ID, d.Owner))
		}
	}
	return out
}
