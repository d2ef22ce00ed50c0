package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
)

// PSIInput is one owner's side of an analysis on the cryptographic backend
// (docs/spec/mpc.md §3): the distinct join values of its dataset's rows
// that pass the analysis's filters on that dataset, grouped by the
// analysis's group-by columns when they are this dataset's.
type PSIInput struct {
	// Dataset is the owner's dataset id.
	Dataset string
	// Columns are the group-by output columns, named as Run names them;
	// empty on the side that holds no dimension.
	Columns []Column
	// Groups are the groups, ordered by the JSON encoding of their key;
	// one group with an empty key when Columns is empty. A join value may
	// be in several groups.
	Groups []PSIGroup
	// Measures are the indexes, in the analysis's measures, of the sum and
	// avg measures over this dataset's columns, whose values Values holds.
	Measures []int
}

// PSIGroup is one group of a PSIInput.
type PSIGroup struct {
	// Key holds the group-by values, JSON-safe as in Result rows.
	Key []any
	// IDs are the distinct join values, as bytes: strings as they are,
	// integers in decimal.
	IDs [][]byte
	// Values, when PSIInput.Measures is not empty, holds for each of IDs
	// the total of each such measure's column over the identifier's rows
	// in the group (nil when every one is NULL), before any clamping.
	Values [][]*int64
}

// PSIInput computes the owner's side of analysis analysisID of m for
// dataset datasetID, which must be loaded. Only that dataset's columns are
// read: its join column, its group-by columns, the columns its filters name
// and those of the sum and avg measures over it; the other dataset's
// filters are the other owner's to apply. The
// first call locks the engine down, as Run does. Errors wrap
// ErrInvalidAnalysis, ErrNotLoaded, ErrIdentityOutput, ErrPolicyViolation or
// ErrQueryFailed.
func (e *Engine) PSIInput(ctx context.Context, m *collab.Manifest, analysisID, datasetID string) (*PSIInput, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	a, ep, err := lookup(m, analysisID)
	if err != nil {
		return nil, err
	}
	g := a.Aggregate
	if a.BackendOf() != collab.BackendMPC || g == nil || len(g.Joins) < 1 {
		return nil, fmt.Errorf("%w: analysis %q is not approved for the mpc backend", ErrInvalidAnalysis, a.ID)
	}
	join := JoinColumn(a, datasetID)
	if join == "" {
		return nil, fmt.Errorf("%w: analysis %q does not read dataset %q", ErrInvalidAnalysis, a.ID, datasetID)
	}
	if err := e.checkLoaded(m, datasetID); err != nil {
		return nil, err
	}
	if err := e.lockDown(ctx); err != nil {
		return nil, err
	}
	c := &aggCompiler{m: m, a: a, pol: newPolicy(ep), in: []*collab.Dataset{m.Dataset(datasetID)}}
	joinSQL, joinCol, err := c.column(join, c.in)
	if err != nil {
		return nil, err
	}
	if !joinCol.Join {
		return nil, c.errf(ErrPolicyViolation, "joins[0]: %s is not declared join: true", join)
	}
	in := &PSIInput{Dataset: datasetID}
	var sel []string
	for i, gb := range g.GroupBy {
		if !strings.HasPrefix(gb, datasetID+".") {
			continue
		}
		q, col, err := c.output(fmt.Sprintf("group_by[%d]", i), gb)
		if err != nil {
			return nil, err
		}
		sel = append(sel, q+" AS "+quoteIdent(col.Name))
	}
	var sums []string
	for i, ms := range g.Measures {
		if (ms.Func != collab.AggSum && ms.Func != collab.AggAvg) || !strings.HasPrefix(ms.Column, datasetID+".") {
			continue
		}
		q, col, err := c.output(fmt.Sprintf("measures[%d].column", i), ms.Column)
		if err != nil {
			return nil, err
		}
		if col.Type != table.Int64 {
			return nil, c.errf(ErrInvalidAnalysis, "measures[%d]: the mpc backend sums int64 columns, %s is %s", i, ms.Column, col.Type)
		}
		sums = append(sums, "CAST(sum("+q+") AS BIGINT)")
		in.Measures = append(in.Measures, i)
	}
	var where []string
	for i, f := range g.Where {
		if !strings.HasPrefix(f.Column, datasetID+".") {
			continue
		}
		s, err := c.filter(i, f)
		if err != nil {
			return nil, err
		}
		where = append(where, s)
	}
	keyCols := append(slices.Clone(sel), joinSQL)
	q := "SELECT " + strings.Join(append(keyCols, sums...), ", ") + " FROM " + quoteIdent(datasetID) + " WHERE " + joinSQL + " IS NOT NULL"
	if len(where) > 0 {
		q += " AND " + strings.Join(where, " AND ")
	}
	groupBy := make([]string, len(keyCols))
	for i := range keyCols {
		groupBy[i] = strconv.Itoa(i + 1)
	}
	q += " GROUP BY " + strings.Join(groupBy, ", ")
	rows, err := e.conn.QueryContext(ctx, q, c.params...)
	if err != nil {
		return nil, queryError(err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, queryError(err)
	}
	for _, t := range types[:len(sel)] {
		in.Columns = append(in.Columns, Column{Name: t.Name(), Type: t.DatabaseTypeName()})
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	groups := map[string]*PSIGroup{}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, queryError(err)
		}
		key := make([]any, len(sel))
		for i := range key {
			if key[i], err = jsonValue(vals[i], types[i].DatabaseTypeName()); err != nil {
				return nil, fmt.Errorf("column %q: %w", types[i].Name(), err)
			}
		}
		k, err := json.Marshal(key)
		if err != nil {
			return nil, fmt.Errorf("%w: group key: %w", ErrQueryFailed, err)
		}
		grp := groups[string(k)]
		if grp == nil {
			grp = &PSIGroup{Key: key}
			groups[string(k)] = grp
		}
		switch v := vals[len(sel)].(type) {
		case string:
			grp.IDs = append(grp.IDs, []byte(v))
		case int64:
			grp.IDs = append(grp.IDs, strconv.AppendInt(nil, v, 10))
		default:
			return nil, fmt.Errorf("%w: join column %s is %T: the mpc backend joins on string or integer columns", ErrInvalidAnalysis, join, v)
		}
		if len(sums) > 0 {
			totals := make([]*int64, len(sums))
			for k := range sums {
				switch v := vals[len(sel)+1+k].(type) {
				case nil:
				case int64:
					totals[k] = &v
				default:
					return nil, fmt.Errorf("%w: sum is %T", ErrQueryFailed, v)
				}
			}
			grp.Values = append(grp.Values, totals)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(err)
	}
	if len(groups) == 0 && len(sel) == 0 {
		groups["[]"] = &PSIGroup{Key: []any{}}
	}
	keys := make([][]any, 0, len(groups))
	for _, grp := range groups {
		keys = append(keys, grp.Key)
	}
	if keys, err = sortRows(keys); err != nil {
		return nil, err
	}
	for _, k := range keys {
		b, _ := json.Marshal(k)
		in.Groups = append(in.Groups, *groups[string(b)])
	}
	e.log.InfoContext(ctx, "psi input", "analysis", a.ID, "dataset", datasetID, "groups", len(in.Groups))
	return in, nil
}

// JoinColumn returns the "dataset.column" on which an aggregate analysis
// joins dataset datasetID ("" when it does not): on the mpc backend, the
// identifier the intersection matches, one per dataset.
func JoinColumn(a *collab.Analysis, datasetID string) string {
	for _, j := range a.Aggregate.Joins {
		for _, col := range []string{j.Left, j.Right} {
			if ds, _, _ := strings.Cut(col, "."); ds == datasetID {
				return col
			}
		}
	}
	return ""
}
