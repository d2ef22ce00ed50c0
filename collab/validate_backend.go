package collab

import (
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"

	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/privacy"
)

// MaxMPCParties bounds the owners of one analysis on the mpc backend.
const MaxMPCParties = 8

// parseEpsilon reads a manifest ε: an exact decimal in (0, 100].
func parseEpsilon(s string) (privacy.Epsilon, error) {
	e, err := privacy.ParseEpsilon(s)
	if err != nil {
		return e, fmt.Errorf("%q: want a decimal like 0.5 (%w)", s, err)
	}
	if e.Sign() <= 0 || e.Cmp(maxEpsilon) > 0 {
		return e, fmt.Errorf("%q: want more than 0 and at most 100", s)
	}
	return e, nil
}

var maxEpsilon, _ = privacy.NewEpsilon(100, 1)

// Epsilon returns the analysis's per-run ε, and false when it has no
// Privacy. It assumes a validated manifest.
func (a *Analysis) Epsilon() (privacy.Epsilon, bool) {
	if a.Privacy == nil {
		return privacy.Epsilon{}, false
	}
	e, err := parseEpsilon(a.Privacy.Epsilon)
	return e, err == nil
}

// Delta returns the δ of a Gaussian release: an exact decimal in
// (0, 1e-3].
func (a *Analysis) Delta() (*big.Rat, error) {
	if a.Privacy == nil || a.Privacy.Delta == "" {
		return nil, fmt.Errorf("missing: the Gaussian mechanism needs delta, e.g. \"1e-6\" written 0.000001")
	}
	d, ok := new(big.Rat).SetString(a.Privacy.Delta)
	if !ok || !decimalRE.MatchString(a.Privacy.Delta) || d.Sign() <= 0 || d.Cmp(maxDelta) > 0 {
		return nil, fmt.Errorf("%q: want a decimal in (0, 0.001], e.g. 0.000001", a.Privacy.Delta)
	}
	return d, nil
}

var (
	maxDelta  = big.NewRat(1, 1000)
	decimalRE = regexp.MustCompile(`^0\.[0-9]{1,18}$`)
)

// Budget returns the dataset's total ε, and false when it sets none. It
// assumes a validated manifest.
func (d *Dataset) Budget() (privacy.Epsilon, bool) {
	if d.OutputPolicy.PrivacyBudget == "" {
		return privacy.Epsilon{}, false
	}
	e, err := parseEpsilon(d.OutputPolicy.PrivacyBudget)
	return e, err == nil
}

// privacy checks an analysis's differential-privacy settings against the
// datasets it reads (docs/spec/analysis.md §7).
func (v *validator) privacy(m *Manifest, path string, a *Analysis) {
	var measures []Measure
	if a.Aggregate != nil {
		measures = a.Aggregate.Measures
	}
	if a.Privacy == nil {
		for i, ms := range measures {
			if ms.Clip != nil && !(a.BackendOf() == BackendMPC && (ms.Func == AggSum || ms.Func == AggAvg)) {
				v.errf(fmt.Sprintf("%s.aggregate.measures[%d].clip", path, i), "clip applies only under privacy, or to sum and avg on the mpc backend")
			}
		}
		for _, id := range ReadsOf(a) {
			if d := m.Dataset(id); d != nil && d.OutputPolicy.PrivacyBudget != "" {
				v.errf(path+".privacy", "missing: dataset %q has a privacy_budget, so every analysis reading it must set privacy: {epsilon: ...}", id)
			}
		}
		return
	}
	eps, err := parseEpsilon(a.Privacy.Epsilon)
	if err != nil {
		v.errf(path+".privacy.epsilon", "%v", err)
	}
	switch a.Privacy.Mechanism {
	case "", MechanismLaplace:
		if a.Privacy.Delta != "" {
			v.errf(path+".privacy.delta", "the Laplace mechanism takes no delta (it is pure ε-DP); use mechanism: gaussian")
		}
	case MechanismGaussian:
		if _, err := a.Delta(); err != nil {
			v.errf(path+".privacy.delta", "%v", err)
		}
	default:
		v.errf(path+".privacy.mechanism", "%q: want laplace or gaussian", a.Privacy.Mechanism)
	}
	if a.Kind != KindAggregate {
		v.errf(path+".privacy", "needs kind aggregate: the sensitivity of custom SQL cannot be bounded")
		return
	}
	for i, ms := range measures {
		p := fmt.Sprintf("%s.aggregate.measures[%d]", path, i)
		switch ms.Func {
		case AggCount, AggCountDistinctIdentities:
			if ms.Clip != nil {
				v.errf(p+".clip", "%s takes no clip", ms.Func)
			}
		case AggSum, AggAvg:
			v.clip(p+".clip", ms.Clip, "%s under privacy needs clip: {min, max} to bound one row's contribution", ms.Func)
			ds, name, _ := strings.Cut(ms.Column, ".")
			if d := m.Dataset(ds); d != nil {
				if col := column(d, name); col != nil && col.Type != table.Int64 {
					v.errf(p+".column", "%s of %q under privacy: the column is %s; noise is added to integers, so use an int64 column (scaled to the resolution you need)", ms.Func, ms.Column, col.Type)
				}
			}
		default:
			v.errf(p+".fn", "%s cannot be released with differential privacy: use count, count_distinct_identities, sum or avg", ms.Func)
		}
	}
	if err != nil {
		return
	}
	for _, id := range ReadsOf(a) {
		d := m.Dataset(id)
		if d == nil {
			continue
		}
		if b, ok := d.Budget(); ok && eps.Cmp(b) > 0 {
			v.errf(path+".privacy.epsilon", "%s is above dataset %q's whole privacy_budget %s: no run could spend it", eps, id, b)
		}
	}
}

// clip checks the clip range of a sum or avg that needs one; why says why
// when it is missing.
func (v *validator) clip(path string, c *Clip, why string, args ...any) {
	switch {
	case c == nil:
		v.errf(path, "missing: "+why, args...)
	case c.Min > c.Max:
		v.errf(path, "min %d is above max %d", c.Min, c.Max)
	case c.Min < -maxClip || c.Max > maxClip:
		v.errf(path, "bounds beyond ±%d", maxClip)
	}
}

// maxClip bounds clip ranges so that a clipped sum of MaxRows rows stays
// exact in float64 and int64 arithmetic.
const maxClip = 1 << 40

// backend checks that an analysis with backend mpc is one the
// cryptographic backend computes (docs/spec/mpc.md §2).
func (v *validator) backend(m *Manifest, path string, a *Analysis) {
	switch a.Backend {
	case "", BackendTEE:
		return
	case BackendMPC:
	default:
		v.errf(path+".backend", "%q: want tee or mpc", a.Backend)
		return
	}
	p := path + ".backend"
	g := a.Aggregate
	if a.Kind != KindAggregate || g == nil {
		v.errf(p, "mpc computes aggregate analyses only, not custom SQL")
		return
	}
	if len(g.Joins) < 1 || len(g.Joins) > MaxMPCParties-1 {
		v.errf(p, "mpc needs 1 to %d joins (a private set intersection of 2 to %d owners' datasets), found %d joins", MaxMPCParties-1, MaxMPCParties, len(g.Joins))
		return
	}
	// Every dataset is a different owner's and is matched on one join
	// column: the intersection is of one identifier.
	owners := map[string]string{}
	keys := map[string]string{}
	for _, ds := range ReadsOf(a) {
		d := m.Dataset(ds)
		if d == nil {
			return
		}
		if prev, ok := owners[d.Owner]; ok {
			v.errf(p, "datasets %q and %q have one owner (%s): mpc intersects different owners' data; use the tee backend", prev, d.ID, d.Owner)
		}
		owners[d.Owner] = d.ID
	}
	for i, j := range g.Joins {
		for _, col := range []string{j.Left, j.Right} {
			ds, _, _ := strings.Cut(col, ".")
			if prev, ok := keys[ds]; ok && prev != col {
				v.errf(fmt.Sprintf("%s.aggregate.joins[%d]", path, i), "mpc matches one identifier: dataset %q is joined on %s and on %s", ds, prev, col)
			}
			keys[ds] = col
		}
	}
	if len(g.Joins) > 1 {
		for i, ms := range g.Measures {
			if ms.Func != AggCountDistinctIdentities {
				v.errf(fmt.Sprintf("%s.aggregate.measures[%d].fn", path, i), "mpc among more than two owners computes count_distinct_identities only, not %s", ms.Func)
			}
		}
	}
	var dims []string
	for _, c := range g.GroupBy {
		ds, _, _ := strings.Cut(c, ".")
		if !slices.Contains(dims, ds) {
			dims = append(dims, ds)
		}
	}
	if len(dims) > 1 {
		v.errf(path+".aggregate.group_by", "mpc groups by one owner's columns; these come from %q", dims)
	}
	for i, ms := range g.Measures {
		p := fmt.Sprintf("%s.aggregate.measures[%d]", path, i)
		switch ms.Func {
		case AggCountDistinctIdentities:
		case AggSum, AggAvg:
			ds, name, _ := strings.Cut(ms.Column, ".")
			if a.Privacy != nil {
				continue // privacy requires the same int64 column and clip
			}
			if d := m.Dataset(ds); d != nil {
				if col := column(d, name); col != nil && col.Type != table.Int64 {
					v.errf(p+".column", "%s of %q on mpc: the column is %s; mpc sums integers, so use an int64 column (scaled to the resolution you need)", ms.Func, ms.Column, col.Type)
				}
			}
			v.clip(p+".clip", ms.Clip, "%s on mpc needs clip: {min, max}: the sums are decrypted as bounded discrete logarithms, so each value is clamped to a declared range", ms.Func)
		default:
			v.errf(p+".fn", "mpc computes count_distinct_identities (distinct matched identifiers), and sum and avg of an int64 column, not %s", ms.Func)
		}
	}
}
