package agent

import (
	"fmt"
	"strings"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/collab"
)

// release turns the per-group intersection sizes, and the decrypted sums
// of the responder's values, into the analysis's result as the engine
// would (analysis.ReleaseExact): a count_distinct_identities is the group's
// count, a sum or avg its clamped total (and count of values); without
// privacy a group below the effective min_distinct_identities is
// suppressed, as are the groups assign dropped; with privacy each value
// gets discrete Laplace noise at its share of ε and the threshold applies
// to a noisy count (docs/spec/analysis.md §7), assign having put each
// identifier in one group.
func (a *Agent) release(p *plan, in *analysis.PSIInput, groups []assigned, counts []int, dropped int, sums [][]analysis.Exact) (*analysis.Result, error) {
	if len(counts) != len(groups) || len(p.sums) > 0 && len(sums) != len(groups) {
		return nil, fmt.Errorf("%w: %d counts and %d sums for %d groups", ErrMalformed, len(counts), len(sums), len(groups))
	}
	exact := make([]analysis.Group, len(groups))
	for i, g := range groups {
		exact[i].Key = in.Groups[g.group].Key
		exact[i].IDs = int64(counts[i])
		k := 0
		for m := range p.an.Aggregate.Measures {
			if k < len(p.sums) && p.sums[k] == m {
				exact[i].Values = append(exact[i].Values, sums[i][k])
				k++
				continue
			}
			exact[i].Values = append(exact[i].Values, analysis.Exact{Count: int64(counts[i])})
		}
	}
	res, err := analysis.ReleaseExact(p.m, p.an.ID, exact, a.cfg.Noise)
	if err != nil {
		return nil, err
	}
	// On this backend the identifier the PSI matches is what is counted
	// and bounded: say so in place of the datasets' identity columns.
	for i := range res.Thresholds {
		res.Thresholds[i].IdentityColumns = []string{joinColumn(p.an, res.Thresholds[i].Dataset)}
	}
	if res.Privacy != nil {
		res.Privacy.Unit = p.an.Aggregate.From + "." + joinColumn(p.an, p.an.Aggregate.From)
	}
	if p.eps == nil {
		res.SuppressedRows += dropped
	}
	return res, nil
}

// joinColumn names the dataset's join column in the analysis: the
// identifier the PSI matches, which stands for identity on this backend.
func joinColumn(an *collab.Analysis, id string) string {
	_, name, _ := strings.Cut(analysis.JoinColumn(an, id), ".")
	return name
}
