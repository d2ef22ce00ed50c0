package agent

import (
	"fmt"
	"strings"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/collab"
)

// release turns the per-group intersection sizes into the analysis's
// result under the output policy: one row per group, its dimensions and,
// for every measure (each a count_distinct_identities), the group's count;
// a group below the effective min_distinct_identities is suppressed, as
// are the groups assign dropped.
func (a *Agent) release(p *plan, in *analysis.PSIInput, groups []assigned, counts []int, dropped int) (*analysis.Result, error) {
	if p.eps != nil {
		return nil, fmt.Errorf("%w: analysis %q asks for differential privacy, which this agent cannot add yet", ErrRefused, p.an.ID)
	}
	if len(counts) != len(groups) {
		return nil, fmt.Errorf("%w: %d counts for %d groups", ErrMalformed, len(counts), len(groups))
	}
	res := &analysis.Result{AnalysisID: p.an.ID, Columns: append([]analysis.Column(nil), in.Columns...), Rows: [][]any{}, SuppressedRows: dropped}
	for _, ms := range p.an.Aggregate.Measures {
		res.Columns = append(res.Columns, analysis.Column{Name: ms.As, Type: "BIGINT"})
	}
	for _, id := range collab.ReadsOf(p.an) {
		res.Thresholds = append(res.Thresholds, analysis.Threshold{Dataset: id, IdentityColumns: []string{joinColumn(p.an, id)}, MinDistinctIdentities: p.pol.MinDistinctIdentities})
	}
	for i, g := range groups {
		if counts[i] < p.pol.MinDistinctIdentities {
			res.SuppressedRows++
			continue
		}
		row := append([]any(nil), in.Groups[g.group].Key...)
		for range p.an.Aggregate.Measures {
			row = append(row, int64(counts[i]))
		}
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

// joinColumn names the dataset's join column in the analysis: the
// identifier the PSI matches, which stands for identity on this backend.
func joinColumn(an *collab.Analysis, id string) string {
	j := an.Aggregate.Joins[0]
	col := j.Left
	if id == j.Dataset {
		col = j.Right
	}
	_, name, _ := strings.Cut(col, ".")
	return name
}
