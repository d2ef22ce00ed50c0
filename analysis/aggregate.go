package analysis

import (
	"fmt"
	"math"
	"strings"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
)

// aggCompiler compiles a declared aggregate analysis.
type aggCompiler struct {
	m      *collab.Manifest
	a      *collab.Analysis
	pol    *policy
	in     []*collab.Dataset // datasets in the query so far
	params []any
}

// compileAggregate generates the SQL of a declared aggregate analysis
// (docs/spec/analysis.md §3): quoted identifiers, filter values bound as
// parameters, inner joins on the declared join columns, GROUP BY the
// dimensions, the measures, then one hidden count(DISTINCT identity) per
// identity column of every dataset in the query.
func compileAggregate(m *collab.Manifest, a *collab.Analysis, pol *policy) (*plan, []Threshold, error) {
	c, fromSQL, err := newAggCompiler(m, a, pol)
	if err != nil {
		return nil, nil, err
	}
	g := a.Aggregate
	var where []string
	for i, f := range g.Where {
		s, err := c.filter(i, f)
		if err != nil {
			return nil, nil, err
		}
		where = append(where, s)
	}
	dims, err := c.dimensions()
	if err != nil {
		return nil, nil, err
	}
	if len(g.Measures) == 0 {
		return nil, nil, c.errf(ErrInvalidAnalysis, "measures: none")
	}
	if a.Privacy != nil {
		return c.compilePrivate(fromSQL, where, dims)
	}
	var sel, groups []string
	for _, d := range dims {
		sel = append(sel, d.sql+" AS "+quoteIdent(d.name))
		groups = append(groups, d.sql)
	}
	for i, ms := range g.Measures {
		s, err := c.measure(i, ms)
		if err != nil {
			return nil, nil, err
		}
		sel = append(sel, s+" AS "+quoteIdent(ms.As))
	}

	// Hidden threshold columns, one per identity column of every dataset.
	p := &plan{}
	var thresholds []Threshold
	for i, d := range c.in {
		ids := identityColumns(d.Descriptor.Schema)
		thresholds = append(thresholds, Threshold{Dataset: d.ID, IdentityColumns: ids, MinDistinctIdentities: pol.min})
		if len(ids) == 0 {
			sel = append(sel, fmt.Sprintf("count(*) AS %s", quoteIdent(fmt.Sprintf("%sk%d", hiddenPrefix, len(p.hidden)))))
			p.hidden = append(p.hidden, hiddenCount{instance: i})
			continue
		}
		for _, id := range ids {
			sel = append(sel, fmt.Sprintf("count(DISTINCT %s.%s) AS %s", quoteIdent(d.ID), quoteIdent(id), quoteIdent(fmt.Sprintf("%sk%d", hiddenPrefix, len(p.hidden)))))
			p.hidden = append(p.hidden, hiddenCount{instance: i, column: id})
		}
	}
	p.sql = selectSQL(sel, fromSQL, where, groups)
	p.params = c.params
	return p, thresholds, nil
}

// selectSQL assembles one SELECT statement.
func selectSQL(sel []string, from string, where, groups []string) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	b.WriteString(strings.Join(sel, ", "))
	b.WriteString(" FROM ")
	b.WriteString(from)
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	if len(groups) > 0 {
		b.WriteString(" GROUP BY ")
		b.WriteString(strings.Join(groups, ", "))
	}
	return b.String()
}

// newAggCompiler resolves the datasets of a declared aggregate analysis,
// its from and joins, and returns the compiler and the FROM clause.
func newAggCompiler(m *collab.Manifest, a *collab.Analysis, pol *policy) (*aggCompiler, string, error) {
	g := a.Aggregate
	if g == nil {
		return nil, "", fmt.Errorf("%w: analysis %q: no aggregate declaration", ErrInvalidAnalysis, a.ID)
	}
	c := &aggCompiler{m: m, a: a, pol: pol}
	from := m.Dataset(g.From)
	if from == nil {
		return nil, "", c.errf(ErrInvalidAnalysis, "from: no dataset %q", g.From)
	}
	c.in = append(c.in, from)
	fromSQL := quoteIdent(from.ID)
	for i, j := range g.Joins {
		d := m.Dataset(j.Dataset)
		if d == nil {
			return nil, "", c.errf(ErrInvalidAnalysis, "joins[%d]: no dataset %q", i, j.Dataset)
		}
		for _, x := range c.in {
			if x.ID == d.ID {
				return nil, "", c.errf(ErrInvalidAnalysis, "joins[%d]: dataset %q is already in the query", i, d.ID)
			}
		}
		l, lc, err := c.column(j.Left, c.in)
		if err != nil {
			return nil, "", err
		}
		r, rc, err := c.column(j.Right, []*collab.Dataset{d})
		if err != nil {
			return nil, "", err
		}
		if !lc.Join || !rc.Join {
			return nil, "", c.errf(ErrPolicyViolation, "joins[%d]: %s = %s: both columns must be declared join: true", i, j.Left, j.Right)
		}
		if lc.Type != rc.Type {
			return nil, "", c.errf(ErrInvalidAnalysis, "joins[%d]: %s is %s but %s is %s", i, j.Left, lc.Type, j.Right, rc.Type)
		}
		fromSQL += fmt.Sprintf(" JOIN %s ON %s = %s", quoteIdent(d.ID), l, r)
		c.in = append(c.in, d)
	}
	if err := c.checkReads(); err != nil {
		return nil, "", err
	}
	return c, fromSQL, nil
}

// dim is one group-by dimension: its SQL, its output name and its column.
type dim struct {
	sql, name string
	col       *table.Column
}

// dimensions resolves the group-by columns. A dimension is named after its
// column, or "dataset.column" when another dimension or a measure has the
// same name.
func (c *aggCompiler) dimensions() ([]dim, error) {
	g := c.a.Aggregate
	names := map[string]int{}
	for _, gb := range g.GroupBy {
		_, col, err := c.column(gb, c.in)
		if err == nil {
			names[strings.ToLower(col.Name)]++
		}
	}
	for _, m := range g.Measures {
		names[strings.ToLower(m.As)]++
	}
	var out []dim
	for i, gb := range g.GroupBy {
		q, col, err := c.output(fmt.Sprintf("group_by[%d]", i), gb)
		if err != nil {
			return nil, err
		}
		name := col.Name
		if names[strings.ToLower(name)] > 1 {
			name = gb // dataset.column, when two datasets share the name
		}
		out = append(out, dim{sql: q, name: name, col: col})
	}
	return out, nil
}

func (c *aggCompiler) errf(class error, format string, args ...any) error {
	return fmt.Errorf("%w: analysis %q: aggregate.%s", class, c.a.ID, fmt.Sprintf(format, args...))
}

// checkReads checks that the analysis's declared reads, if given, are the
// datasets of the query.
func (c *aggCompiler) checkReads() error {
	if len(c.a.Reads) == 0 {
		return nil
	}
	if len(c.a.Reads) != len(c.in) {
		return fmt.Errorf("%w: analysis %q: reads %q, but the aggregate reads %d datasets", ErrInvalidAnalysis, c.a.ID, c.a.Reads, len(c.in))
	}
	for i, d := range c.in {
		if c.a.Reads[i] != d.ID {
			return fmt.Errorf("%w: analysis %q: reads %q, but the aggregate reads %q at position %d", ErrInvalidAnalysis, c.a.ID, c.a.Reads, d.ID, i)
		}
	}
	return nil
}

// column resolves "dataset.column" among the datasets given and returns it
// quoted.
func (c *aggCompiler) column(s string, among []*collab.Dataset) (string, *table.Column, error) {
	dsID, name, ok := strings.Cut(s, ".")
	if !ok {
		return "", nil, c.errf(ErrInvalidAnalysis, "%q: want dataset.column", s)
	}
	for _, d := range among {
		if d.ID != dsID || d.Descriptor.Schema == nil {
			continue
		}
		for i := range d.Descriptor.Schema.Columns {
			col := &d.Descriptor.Schema.Columns[i]
			if col.Name == name {
				return quoteIdent(d.ID) + "." + quoteIdent(col.Name), col, nil
			}
		}
		return "", nil, c.errf(ErrInvalidAnalysis, "%q: dataset %q has no column %q", s, dsID, name)
	}
	return "", nil, c.errf(ErrInvalidAnalysis, "%q: dataset %q is not in the query", s, dsID)
}

// output resolves a column that is output, filtered on or aggregated: it
// must not be an identity or join column, and the owners' policies must
// allow it.
func (c *aggCompiler) output(path, s string) (string, *table.Column, error) {
	q, col, err := c.column(s, c.in)
	if err != nil {
		return "", nil, err
	}
	switch {
	case col.Identity:
		return "", nil, c.errf(ErrIdentityOutput, "%s: %q is an identity column", path, s)
	case col.Join:
		return "", nil, c.errf(ErrIdentityOutput, "%s: %q is a join column", path, s)
	case !c.pol.columns[strings.ToLower(s)]:
		return "", nil, c.errf(ErrPolicyViolation, "%s: %q is not an allowed column of its owner's output policy", path, s)
	}
	return q, col, nil
}

// filter returns the SQL of one filter, its values bound as parameters.
func (c *aggCompiler) filter(i int, f collab.Filter) (string, error) {
	path := fmt.Sprintf("where[%d]", i)
	q, col, err := c.output(path+".column", f.Column)
	if err != nil {
		return "", err
	}
	switch f.Op {
	case "=", "!=", "<", "<=", ">", ">=":
		v, err := c.bind(path+".value", f.Value, col)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s %s %s", q, f.Op, v), nil
	case "in":
		list, ok := f.Value.([]any)
		if !ok || len(list) == 0 {
			return "", c.errf(ErrInvalidAnalysis, "%s.value: in takes a non-empty list", path)
		}
		vs := make([]string, len(list))
		for k, x := range list {
			if vs[k], err = c.bind(fmt.Sprintf("%s.value[%d]", path, k), x, col); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%s IN (%s)", q, strings.Join(vs, ", ")), nil
	}
	return "", c.errf(ErrInvalidAnalysis, "%s.op: %q: want =, !=, <, <=, >, >= or in", path, f.Op)
}

// bind adds a filter value as a parameter, converted to the column's type,
// and returns its placeholder.
func (c *aggCompiler) bind(path string, v any, col *table.Column) (string, error) {
	var p any
	bad := func() (string, error) {
		return "", c.errf(ErrInvalidAnalysis, "%s: %v (%T) is not a %s value for column %q", path, v, v, col.Type, col.Name)
	}
	switch col.Type {
	case table.String, table.Date, table.Timestamp:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		p = s
	case table.Int64:
		switch x := v.(type) {
		case float64:
			if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
				return bad()
			}
			p = int64(x)
		case int:
			p = int64(x)
		case int64:
			p = x
		default:
			return bad()
		}
	case table.Double:
		switch x := v.(type) {
		case float64:
			p = x
		case int:
			p = float64(x)
		case int64:
			p = float64(x)
		default:
			return bad()
		}
	case table.Bool:
		b, ok := v.(bool)
		if !ok {
			return bad()
		}
		p = b
	default:
		return bad()
	}
	c.params = append(c.params, p)
	return fmt.Sprintf("CAST($%d AS %s)", len(c.params), duckType(col.Type)), nil
}

// measure returns the SQL of one measure.
func (c *aggCompiler) measure(i int, ms collab.Measure) (string, error) {
	path := fmt.Sprintf("measures[%d]", i)
	if strings.HasPrefix(strings.ToLower(ms.As), hiddenPrefix) || ms.As == "" {
		return "", c.errf(ErrInvalidAnalysis, "%s.as: %q: want a name not starting with %s", path, ms.As, hiddenPrefix)
	}
	if !c.pol.aggregates[ms.Func] {
		return "", c.errf(ErrPolicyViolation, "%s.fn: %q is not allowed by the output policies of the datasets read", path, ms.Func)
	}
	switch ms.Func {
	case collab.AggCount:
		if ms.Column != "" || ms.Dataset != "" {
			return "", c.errf(ErrInvalidAnalysis, "%s: count takes no column or dataset", path)
		}
		return "count(*)", nil
	case collab.AggCountDistinctIdentities:
		for _, d := range c.in {
			if d.ID != ms.Dataset {
				continue
			}
			ids := identityColumns(d.Descriptor.Schema)
			if len(ids) == 0 {
				return "", c.errf(ErrInvalidAnalysis, "%s.dataset: dataset %q has no identity column", path, ms.Dataset)
			}
			return fmt.Sprintf("count(DISTINCT %s.%s)", quoteIdent(d.ID), quoteIdent(ids[0])), nil
		}
		return "", c.errf(ErrInvalidAnalysis, "%s.dataset: %q is not a dataset of the query", path, ms.Dataset)
	case collab.AggSum, collab.AggAvg, collab.AggMin, collab.AggMax:
		q, col, err := c.output(path+".column", ms.Column)
		if err != nil {
			return "", err
		}
		numeric := col.Type == table.Int64 || col.Type == table.Double
		ordered := col.Type == table.Date || col.Type == table.Timestamp
		if !numeric && (ms.Func == collab.AggSum || ms.Func == collab.AggAvg || !ordered) {
			return "", c.errf(ErrInvalidAnalysis, "%s.column: %s of %q: the column is %s", path, ms.Func, ms.Column, col.Type)
		}
		return fmt.Sprintf("%s(%s)", ms.Func, q), nil
	}
	return "", c.errf(ErrInvalidAnalysis, "%s.fn: unknown function %q", path, ms.Func)
}
