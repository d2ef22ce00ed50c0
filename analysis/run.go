package analysis

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
)

// hiddenPrefix starts the names of the engine's hidden threshold columns;
// analyses may not use it.
const hiddenPrefix = "__kura_"

// plan is an analysis compiled to one statement.
type plan struct {
	sql    string
	params []any
	// hidden are the trailing columns of the statement that hold distinct
	// identity counts; they are never output.
	hidden []hiddenCount
	// dp, for an analysis under privacy, is its noise; the statement then
	// returns the group keys and the exact integers noise is added to,
	// and columns are the output's columns.
	dp      *dpRelease
	columns []Column
}

// hiddenCount is one hidden column: the distinct count of an identity
// column (or the row count, when the dataset declares none) of one table
// instance of the query.
type hiddenCount struct {
	instance int // index into thresholds
	column   string
}

// policy is what Run enforces, combined over the datasets read.
type policy struct {
	min        int
	aggregates map[collab.AggFunc]bool
	columns    map[string]bool // "dataset.column", lower case
}

func newPolicy(p *collab.EffectivePolicy) *policy {
	pol := &policy{min: max(p.MinDistinctIdentities, 1), aggregates: map[collab.AggFunc]bool{}, columns: map[string]bool{}}
	for _, f := range p.AllowedAggregates {
		pol.aggregates[f] = true
	}
	for _, c := range p.AllowedColumns {
		pol.columns[strings.ToLower(c)] = true
	}
	return pol
}

// Run runs the analysis analysisID of manifest m on the loaded datasets and
// applies the output policy: the policies of every dataset the analysis
// reads combine, the strictest winning (collab.Manifest.EffectivePolicy),
// and an output row is suppressed when any dataset in the query has fewer
// distinct identities behind it than the combined minimum. The first Run
// locks the engine down. Errors wrap ErrInvalidAnalysis, ErrNotLoaded,
// ErrUnsupportedSQL, ErrIdentityOutput, ErrPolicyViolation or
// ErrQueryFailed.
func (e *Engine) Run(ctx context.Context, m *collab.Manifest, analysisID string) (*Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	a, ep, err := lookup(m, analysisID)
	if err != nil {
		return nil, err
	}
	pol := newPolicy(ep)
	for _, id := range collab.ReadsOf(a) {
		if err := e.checkLoaded(m, id); err != nil {
			return nil, err
		}
	}
	if err := e.lockDown(ctx); err != nil {
		return nil, err
	}
	p, thresholds, err := e.compile(ctx, m, a, pol)
	if err != nil {
		e.log.WarnContext(ctx, "analysis refused", "analysis", a.ID, "kind", a.Kind, "reason", err)
		return nil, err
	}
	var res *Result
	if p.dp != nil {
		res, err = e.executePrivate(ctx, p, thresholds)
	} else {
		res, err = e.execute(ctx, p, pol, thresholds)
	}
	if err != nil {
		e.log.WarnContext(ctx, "analysis failed", "analysis", a.ID, "reason", err)
		return nil, err
	}
	res.AnalysisID = a.ID
	e.log.InfoContext(ctx, "analysis ran", "analysis", a.ID, "kind", a.Kind, "rows", len(res.Rows),
		"suppressed_rows", res.SuppressedRows, "min_distinct_identities", pol.min, "min_set_by", ep.MinSetBy.String())
	return res, nil
}

// lookup returns analysis analysisID of m, which must read at least one
// dataset, and its combined output policy.
func lookup(m *collab.Manifest, analysisID string) (*collab.Analysis, *collab.EffectivePolicy, error) {
	if m == nil {
		return nil, nil, fmt.Errorf("%w: no manifest", ErrInvalidAnalysis)
	}
	a := m.Analysis(analysisID)
	if a == nil {
		return nil, nil, fmt.Errorf("%w: manifest %q has no analysis %q", ErrInvalidAnalysis, m.ID, analysisID)
	}
	ep, err := m.EffectivePolicy(analysisID)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidAnalysis, err)
	}
	if len(collab.ReadsOf(a)) == 0 {
		return nil, nil, fmt.Errorf("%w: analysis %q reads no dataset", ErrInvalidAnalysis, a.ID)
	}
	return a, ep, nil
}

// compile checks analysis a against the datasets' schemas and the combined
// policy and compiles it to one statement: everything Run does before it
// touches data.
func (e *Engine) compile(ctx context.Context, m *collab.Manifest, a *collab.Analysis, pol *policy) (*plan, []Threshold, error) {
	switch a.Kind {
	case collab.KindAggregate:
		return compileAggregate(m, a, pol)
	case collab.KindSQL:
		return e.compileSQL(ctx, m, a, pol)
	}
	return nil, nil, fmt.Errorf("%w: analysis %q: kind %q", ErrInvalidAnalysis, a.ID, a.Kind)
}

// checkLoaded checks that dataset id is loaded with the manifest's schema.
func (e *Engine) checkLoaded(m *collab.Manifest, id string) error {
	ds := m.Dataset(id)
	if ds == nil {
		return fmt.Errorf("%w: no dataset %q in the manifest", ErrInvalidAnalysis, id)
	}
	l := e.datasets[strings.ToLower(id)]
	if l == nil {
		return fmt.Errorf("%w: %q", ErrNotLoaded, id)
	}
	want := ds.Descriptor.Schema
	if want == nil || !sameColumns(want.Columns, l.schema.Columns) {
		return fmt.Errorf("%w: dataset %q was loaded with a schema other than the manifest's", ErrInvalidAnalysis, id)
	}
	return nil
}

func sameColumns(a, b []table.Column) bool {
	return slices.EqualFunc(a, b, func(x, y table.Column) bool {
		return x.Name == y.Name && x.Type == y.Type && x.Identity == y.Identity && x.Join == y.Join
	})
}

// identityColumns returns the dataset's identity columns.
func identityColumns(s *table.Schema) []string {
	var out []string
	for _, c := range s.Columns {
		if c.Identity {
			out = append(out, c.Name)
		}
	}
	return out
}

// execute runs the plan, drops the rows below the thresholds and the
// hidden columns, and converts values.
func (e *Engine) execute(ctx context.Context, p *plan, pol *policy, thresholds []Threshold) (*Result, error) {
	rows, err := e.conn.QueryContext(ctx, p.sql, p.params...)
	if err != nil {
		return nil, queryError(err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, queryError(err)
	}
	nOut := len(types) - len(p.hidden)
	if nOut < 0 {
		return nil, fmt.Errorf("%w: the statement returned %d columns, fewer than its %d threshold columns", ErrUnsupportedSQL, len(types), len(p.hidden))
	}
	res := &Result{Thresholds: thresholds, SQL: p.sql, Params: p.params, Rows: [][]any{}}
	for _, t := range types[:nOut] {
		if strings.HasPrefix(strings.ToLower(t.Name()), hiddenPrefix) {
			return nil, fmt.Errorf("%w: output column %q: names starting with %s are reserved", ErrUnsupportedSQL, t.Name(), hiddenPrefix)
		}
		res.Columns = append(res.Columns, Column{Name: t.Name(), Type: t.DatabaseTypeName()})
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	counts := make([]int64, len(thresholds))
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, queryError(err)
		}
		for i := range counts {
			counts[i] = -1
		}
		for i, h := range p.hidden {
			n, ok := vals[nOut+i].(int64)
			if !ok {
				return nil, fmt.Errorf("%w: threshold column %d is %T, not a count", ErrQueryFailed, i, vals[nOut+i])
			}
			if counts[h.instance] < 0 || n < counts[h.instance] {
				counts[h.instance] = n
			}
		}
		below := false
		for _, n := range counts {
			if n < int64(pol.min) {
				below = true
			}
		}
		if below {
			res.SuppressedRows++
			continue
		}
		row := make([]any, nOut)
		for i := range row {
			if row[i], err = jsonValue(vals[i], types[i].DatabaseTypeName()); err != nil {
				return nil, fmt.Errorf("column %q: %w", types[i].Name(), err)
			}
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(err)
	}
	if res.Rows, err = sortRows(res.Rows); err != nil {
		return nil, err
	}
	return res, nil
}
