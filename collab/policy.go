package collab

import (
	"fmt"
	"slices"
	"strings"
)

// Source names the dataset, and its owner, that imposed a constraint.
type Source struct {
	Dataset string `json:"dataset"`
	Owner   string `json:"owner"`
}

// String returns `owner (dataset "id")`.
func (s Source) String() string { return fmt.Sprintf("%s (dataset %q)", s.Owner, s.Dataset) }

// Exclusion is a measure function or column that an output policy rules
// out, with who ruled it out and why.
type Exclusion struct {
	Item   string `json:"item"` // a function name, or "dataset.column"
	By     Source `json:"by"`
	Reason string `json:"reason"`
}

// EffectivePolicy is the output policy of an analysis: the policies of
// every dataset it reads, combined so that the strictest wins.
type EffectivePolicy struct {
	Analysis string `json:"analysis"`
	// MinDistinctIdentities is the largest minimum of the datasets read;
	// MinSetBy is the first dataset that imposes it.
	MinDistinctIdentities int    `json:"min_distinct_identities"`
	MinSetBy              Source `json:"min_set_by"`
	// AllowedAggregates is the intersection of the datasets' allowed
	// functions (an empty list in a policy allows every function).
	AllowedAggregates []AggFunc `json:"allowed_aggregates"`
	// AllowedColumns lists, as "dataset.column", every column that may be
	// a group-by dimension, measure argument or filter: allowed by its own
	// dataset's policy, and neither an identity nor a join column.
	AllowedColumns []string `json:"allowed_columns"`
	// Exclusions says who ruled out each other function and column.
	Exclusions []Exclusion `json:"exclusions,omitempty"`
}

func (p *EffectivePolicy) excludedBy(item string) string {
	var by []string
	for _, e := range p.Exclusions {
		if e.Item == item {
			by = append(by, e.By.String())
		}
	}
	return strings.Join(by, ", ")
}

// EffectivePolicy combines the output policies of the datasets the
// analysis reads.
func (m *Manifest) EffectivePolicy(analysisID string) (*EffectivePolicy, error) {
	a := m.Analysis(analysisID)
	if a == nil {
		return nil, fmt.Errorf("%w: no analysis %q", ErrInvalidManifest, analysisID)
	}
	var ds []*Dataset
	for _, id := range ReadsOf(a) {
		d := m.Dataset(id)
		if d == nil {
			return nil, fmt.Errorf("%w: analysis %q reads unknown dataset %q", ErrInvalidManifest, analysisID, id)
		}
		ds = append(ds, d)
	}
	p := effective(ds)
	p.Analysis = analysisID
	return p, nil
}

func effective(ds []*Dataset) *EffectivePolicy {
	p := &EffectivePolicy{AllowedAggregates: []AggFunc{}, AllowedColumns: []string{}}
	for _, d := range ds {
		src := Source{Dataset: d.ID, Owner: d.Owner}
		if d.OutputPolicy.MinDistinctIdentities > p.MinDistinctIdentities {
			p.MinDistinctIdentities, p.MinSetBy = d.OutputPolicy.MinDistinctIdentities, src
		}
		if len(d.OutputPolicy.AllowedAggregates) > 0 {
			for _, f := range AggregateFunctions() {
				if !slices.Contains(d.OutputPolicy.AllowedAggregates, f) {
					p.Exclusions = append(p.Exclusions, Exclusion{Item: string(f), By: src, Reason: "not in allowed_aggregates"})
				}
			}
		}
		if d.Descriptor.Schema == nil {
			continue
		}
		for _, c := range d.Descriptor.Schema.Columns {
			q := d.ID + "." + c.Name
			switch {
			case c.Identity:
				p.Exclusions = append(p.Exclusions, Exclusion{Item: q, By: src, Reason: "identity column"})
			case c.Join:
				p.Exclusions = append(p.Exclusions, Exclusion{Item: q, By: src, Reason: "join column"})
			case len(d.OutputPolicy.AllowedColumns) > 0 && !slices.Contains(d.OutputPolicy.AllowedColumns, c.Name):
				p.Exclusions = append(p.Exclusions, Exclusion{Item: q, By: src, Reason: "not in allowed_columns"})
			default:
				p.AllowedColumns = append(p.AllowedColumns, q)
			}
		}
	}
	for _, f := range AggregateFunctions() {
		if p.excludedBy(string(f)) == "" {
			p.AllowedAggregates = append(p.AllowedAggregates, f)
		}
	}
	return p
}
