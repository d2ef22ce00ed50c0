package analysis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/privacy"
)

// The noise kura adds to a private release.
const (
	MechanismDiscreteLaplace  = "discrete_laplace"
	MechanismDiscreteGaussian = "discrete_gaussian"
)

// PrivacyRelease says how a result was released with differential privacy
// (docs/spec/analysis.md §7): what a receiver needs to interpret the noisy
// values. Every amount of ε is exact, as privacy.Epsilon writes it.
type PrivacyRelease struct {
	// Mechanism is MechanismDiscreteLaplace or MechanismDiscreteGaussian.
	Mechanism string `json:"mechanism"`
	// Epsilon is the analysis's ε, spent once per run.
	Epsilon string `json:"epsilon"`
	// Rho, for the Gaussian mechanism, is the run's zCDP ρ: the largest
	// (rounded down) whose (ε, δ) conversion fits the analysis's ε and δ.
	Rho string `json:"rho,omitempty"`
	// Delta is the probability bound of the noisy threshold (partition
	// selection): the release is (Epsilon, Delta)-DP. A float, for display:
	// nothing is accounted with it.
	Delta float64 `json:"delta"`
	// Unit is what one person is: "dataset.identity_column" of the from
	// dataset, or "dataset" when it declares no identity column (a row).
	// Each unit contributes one row, in one group.
	Unit string `json:"unit"`
	// Measures says, per measure in output order, the noise added.
	Measures []MeasureRelease `json:"measures"`
	// Threshold says which noisy count decided which groups are output.
	Threshold ThresholdRelease `json:"threshold"`
}

// MeasureRelease is the release of one measure: its share of ε, its clip
// range, and each noisy integer it is computed from (a sum and a count for
// avg, one value otherwise).
type MeasureRelease struct {
	Name    string         `json:"name"`
	Func    collab.AggFunc `json:"fn"`
	Epsilon string         `json:"epsilon,omitempty"` // Laplace
	Rho     string         `json:"rho,omitempty"`     // Gaussian
	Clip    *collab.Clip   `json:"clip,omitempty"`
	Noise   []NoiseRelease `json:"noise"`
}

// NoiseRelease is one noisy integer: what it counts or sums ("count",
// "distinct" or "sum"), the ε it costs and the sensitivity its noise is
// scaled to (scale sensitivity/ε).
type NoiseRelease struct {
	Of          string `json:"of"`
	Epsilon     string `json:"epsilon,omitempty"` // Laplace
	Rho         string `json:"rho,omitempty"`     // Gaussian
	Sensitivity int64  `json:"sensitivity"`
}

// ThresholdRelease is the noisy threshold: a group is output only if the
// noisy count of Measure (a hidden count of its own share of ε when
// Measure is absent) is at least Min.
type ThresholdRelease struct {
	Measure string `json:"measure,omitempty"`
	Epsilon string `json:"epsilon,omitempty"` // Laplace
	Rho     string `json:"rho,omitempty"`     // Gaussian
	Min     int    `json:"min"`
}

// Exact is the exact value of one measure in one group, computed
// elsewhere, for ReleaseExact: Count for count and
// count_distinct_identities; Sum, the sum of the group's values each
// clamped to the measure's clip range, for sum; both for avg, Count being
// the number of values summed (those not NULL).
type Exact struct {
	Sum   int64
	Count int64
}

// Group is one group of exact values computed elsewhere (by the
// cryptographic backend), for ReleaseExact: its group-by values, in the
// analysis's group_by order; IDs, the number of distinct units (matched
// identifiers) in it; and one Exact per measure.
type Group struct {
	Key    []any
	IDs    int64
	Values []Exact
}

// ReleaseExact releases exact per-group values computed outside the engine
// (by the cryptographic backend, docs/spec/mpc.md) as the engine would: the
// analysis analysisID of m must be a declared aggregate whose measures are
// count, count_distinct_identities, or sum or avg of an int64 column.
// Without privacy a group is output when its IDs is at least the combined
// min_distinct_identities; a sum is output as HUGEINT and an avg as
// DOUBLE, null when its Count is 0, as the engine outputs them (a sum of
// no values is 0 here, where the engine's is null). With
// privacy each exact integer gets discrete Laplace noise at its share of
// ε, drawn from rnd (crypto/rand when nil), and a group is output when its
// threshold count (IDs when every measure is a sum) is at least the
// minimum after noise, exactly as a private run of the engine
// (docs/spec/analysis.md §7). The caller must have bounded contributions:
// each unit (identifier) is in at most one group and adds at most one
// value, clamped to the clip range, to each sum, else the stated ε does
// not hold. The Result has the engine's columns and encoding, with no SQL.
func ReleaseExact(m *collab.Manifest, analysisID string, groups []Group, rnd io.Reader) (*Result, error) {
	a, ep, err := lookup(m, analysisID)
	if err != nil {
		return nil, err
	}
	pol := newPolicy(ep)
	c, _, err := newAggCompiler(m, a, pol)
	if err != nil {
		return nil, err
	}
	dims, err := c.dimensions()
	if err != nil {
		return nil, err
	}
	measures := a.Aggregate.Measures
	if len(measures) == 0 {
		return nil, c.errf(ErrInvalidAnalysis, "measures: none")
	}
	for i, ms := range measures {
		if _, err := c.measure(i, ms); err != nil {
			return nil, err
		}
		switch ms.Func {
		case collab.AggCount, collab.AggCountDistinctIdentities:
		case collab.AggSum, collab.AggAvg:
			if _, col, _ := c.column(ms.Column, c.in); col.Type != table.Int64 {
				return nil, c.errf(ErrInvalidAnalysis, "measures[%d].column: %s of %q: exact sums are of int64 columns, not %s", i, ms.Func, ms.Column, col.Type)
			}
		default:
			return nil, c.errf(ErrInvalidAnalysis, "measures[%d].fn: %s: only count, count_distinct_identities, sum and avg are released from exact values", i, ms.Func)
		}
	}
	var rel *dpRelease
	if a.Privacy != nil {
		if rel, err = c.release(dims, nil); err != nil {
			return nil, err
		}
	}
	keys := make([][]any, len(groups))
	for i, g := range groups {
		if len(g.Key) != len(dims) || len(g.Values) != len(measures) {
			return nil, fmt.Errorf("%w: group %d has %d keys and %d values, want %d and %d", ErrInvalidAnalysis, i, len(g.Key), len(g.Values), len(dims), len(measures))
		}
		if g.IDs < 0 || slices.ContainsFunc(g.Values, func(v Exact) bool { return v.Count < 0 }) {
			return nil, fmt.Errorf("%w: group %d has a negative count", ErrInvalidAnalysis, i)
		}
		keys[i] = make([]any, len(dims))
		for k, v := range g.Key {
			if keys[i][k], err = jsonValue(v, duckType(dims[k].col.Type)); err != nil {
				return nil, fmt.Errorf("group %d: key %q: %w", i, dims[k].name, err)
			}
		}
	}
	res := &Result{AnalysisID: a.ID, Rows: [][]any{}}
	for _, d := range dims {
		res.Columns = append(res.Columns, Column{Name: d.name, Type: duckType(d.col.Type)})
	}
	for _, ms := range measures {
		t := "BIGINT"
		switch {
		case ms.Func == collab.AggAvg:
			t = "DOUBLE"
		case ms.Func == collab.AggSum && rel == nil:
			t = "HUGEINT" // DuckDB's sum of BIGINT
		}
		res.Columns = append(res.Columns, Column{Name: ms.As, Type: t})
	}
	if rel != nil {
		exact := make([]exactGroup, len(groups))
		for i, g := range groups {
			exact[i] = exactGroup{key: keys[i], vals: rel.exactParts(g)}
		}
		res.Rows, err = rel.apply(exact, rnd)
		res.Thresholds, res.Privacy = rel.thresholds, rel.info
		return res, err
	}
	for _, d := range c.in {
		res.Thresholds = append(res.Thresholds, Threshold{Dataset: d.ID, IdentityColumns: identityColumns(d.Descriptor.Schema), MinDistinctIdentities: pol.min})
	}
	for i, g := range groups {
		if g.IDs < int64(pol.min) {
			res.SuppressedRows++
			continue
		}
		row := append([]any{}, keys[i]...)
		for k, ms := range measures {
			v := g.Values[k]
			switch ms.Func {
			case collab.AggSum:
				row = append(row, json.Number(strconv.FormatInt(v.Sum, 10)))
			case collab.AggAvg:
				if v.Count == 0 {
					row = append(row, nil)
				} else {
					row = append(row, jsonFloat(float64(v.Sum)/float64(v.Count)))
				}
			default:
				row = append(row, json.Number(strconv.FormatInt(v.Count, 10)))
			}
		}
		res.Rows = append(res.Rows, row)
	}
	if res.Rows, err = sortRows(res.Rows); err != nil {
		return nil, err
	}
	return res, nil
}

// exactParts returns g's exact integers in the order of d's noise parts, each
// clamped to ±2^62 as the engine's are: the measures' (the sum, then the
// count of an avg), then the hidden threshold count, IDs, if d has one.
func (d *dpRelease) exactParts(g Group) []int64 {
	vals := make([]int64, 0, len(d.parts))
	for i, m := range d.measures {
		v := g.Values[i]
		switch m.fn {
		case collab.AggSum:
			vals = append(vals, clampExact(v.Sum))
		case collab.AggAvg:
			vals = append(vals, clampExact(v.Sum), clampExact(v.Count))
		default:
			vals = append(vals, clampExact(v.Count))
		}
	}
	if len(vals) < len(d.parts) {
		vals = append(vals, clampExact(g.IDs))
	}
	return vals
}

// dpRelease is the noise of a private analysis, fixed at compile time.
type dpRelease struct {
	measures   []dpMeasure
	parts      []privacy.Mechanism // one per exact integer, in column order
	threshold  int                 // the part whose noisy value decides
	min        int
	thresholds []Threshold
	info       *PrivacyRelease
}

// dpMeasure is one output measure and the parts it is computed from.
type dpMeasure struct {
	fn    collab.AggFunc
	parts []int
}

// exactGroup is one group before noise: JSON-safe keys and one exact
// integer per part.
type exactGroup struct {
	key  []any
	vals []int64
}

// release plans the noise of c's private analysis. inputs, when not nil,
// receives the inner query's measure inputs of sum and avg (the clamped
// value) and count_distinct_identities (the counted identity), by measure
// index; the returned parts follow the measures: sum and count for avg.
func (c *aggCompiler) release(dims []dim, inputs map[int]string) (*dpRelease, error) {
	eps, ok := c.a.Epsilon()
	if !ok {
		return nil, fmt.Errorf("%w: analysis %q: privacy.epsilon %q", ErrInvalidAnalysis, c.a.ID, c.a.Privacy.Epsilon)
	}
	ms := c.a.Aggregate.Measures
	rel := &dpRelease{min: c.pol.min, threshold: -1}
	type part struct {
		of          string
		sensitivity int64
		half        bool
	}
	plans := make([][]part, len(ms))
	for i, m := range ms {
		if _, err := c.measure(i, m); err != nil {
			return nil, err
		}
		path := fmt.Sprintf("measures[%d]", i)
		switch m.Func {
		case collab.AggCount:
			plans[i] = []part{{of: "count", sensitivity: 1}}
		case collab.AggCountDistinctIdentities:
			plans[i] = []part{{of: "distinct", sensitivity: 1}}
			if inputs != nil {
				for _, d := range c.in {
					if d.ID == m.Dataset {
						inputs[i] = quoteIdent(d.ID) + "." + quoteIdent(identityColumns(d.Descriptor.Schema)[0])
					}
				}
			}
		case collab.AggSum, collab.AggAvg:
			q, col, err := c.output(path+".column", m.Column)
			if err != nil {
				return nil, err
			}
			if col.Type != table.Int64 {
				return nil, c.errf(ErrInvalidAnalysis, "%s.column: %s of %q under privacy needs an int64 column, not %s: noise is added to exact integers", path, m.Func, m.Column, col.Type)
			}
			if m.Clip == nil || m.Clip.Min > m.Clip.Max {
				return nil, c.errf(ErrInvalidAnalysis, "%s.clip: %s under privacy needs clip {min, max} with min <= max", path, m.Func)
			}
			s := max(1, absInt64(m.Clip.Min), absInt64(m.Clip.Max))
			if inputs != nil {
				inputs[i] = fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL ELSE LEAST(GREATEST(%s, %d), %d) END", q, q, m.Clip.Min, m.Clip.Max)
			}
			plans[i] = []part{{of: "sum", sensitivity: s}}
			if m.Func == collab.AggAvg {
				plans[i] = []part{{of: "sum", sensitivity: s, half: true}, {of: "count", sensitivity: 1, half: true}}
			}
		default:
			return nil, c.errf(ErrInvalidAnalysis, "%s.fn: %s cannot be released with differential privacy: use count, count_distinct_identities, sum or avg", path, m.Func)
		}
	}
	// The threshold reads a measure's noisy count (count or
	// count_distinct_identities first, then avg's count); with none (only
	// sums), a hidden count takes its own share of ε.
	thresholdMeasure := -1
	for _, want := range []string{"one", "avg"} {
		for i, p := range plans {
			if thresholdMeasure < 0 && (want == "one" && len(p) == 1 && p[0].of != "sum" || want == "avg" && len(p) == 2) {
				thresholdMeasure = i
			}
		}
	}
	shares := int64(len(ms))
	if thresholdMeasure < 0 {
		shares++
	}
	share, err := divide(eps, shares)
	if err != nil {
		return nil, c.errf(ErrInvalidAnalysis, "privacy.epsilon: %v", err)
	}
	halfEps, err := divide(share, 2)
	if err != nil {
		return nil, c.errf(ErrInvalidAnalysis, "privacy.epsilon: %v", err)
	}
	from := c.in[0]
	unit := from.ID
	if ids := identityColumns(from.Descriptor.Schema); len(ids) > 0 {
		unit += "." + ids[0]
	}
	rel.info = &PrivacyRelease{Mechanism: MechanismDiscreteLaplace, Epsilon: eps.String(), Unit: unit, Measures: []MeasureRelease{}}
	// noise returns the mechanism of one part: Laplace at its share of ε,
	// or Gaussian at its share of ρ.
	var gauss *gaussianPlan
	if c.a.Privacy.Mechanism == collab.MechanismGaussian {
		if gauss, err = newGaussianPlan(c.a, eps, shares); err != nil {
			return nil, c.errf(ErrInvalidAnalysis, "privacy: %v", err)
		}
		rel.info.Mechanism, rel.info.Rho = MechanismDiscreteGaussian, gauss.total.String()
	}
	addPart := func(sens int64, half bool) (int, NoiseRelease, error) {
		nr := NoiseRelease{Sensitivity: sens}
		var m privacy.Mechanism
		if gauss != nil {
			rho := gauss.share
			if half {
				rho = gauss.half
			}
			m, err = privacy.NewGaussian(sens, rho)
			nr.Rho = rho.String()
		} else {
			e := share
			if half {
				e = halfEps
			}
			m, err = privacy.NewLaplace(sens, e)
			nr.Epsilon = e.String()
		}
		if err != nil {
			return 0, nr, c.errf(ErrInvalidAnalysis, "privacy: %v", err)
		}
		rel.parts = append(rel.parts, m)
		return len(rel.parts) - 1, nr, nil
	}
	for i, m := range ms {
		mr := MeasureRelease{Name: m.As, Func: m.Func, Clip: m.Clip}
		if gauss != nil {
			mr.Rho = gauss.share.String()
		} else {
			mr.Epsilon = share.String()
		}
		dm := dpMeasure{fn: m.Func}
		for _, p := range plans[i] {
			k, nr, err := addPart(p.sensitivity, p.half)
			if err != nil {
				return nil, err
			}
			nr.Of = p.of
			dm.parts = append(dm.parts, k)
			mr.Noise = append(mr.Noise, nr)
			if i == thresholdMeasure && p.of != "sum" {
				rel.threshold = k
				rel.info.Threshold = ThresholdRelease{Measure: m.As, Epsilon: nr.Epsilon, Rho: nr.Rho, Min: rel.min}
			}
		}
		rel.measures = append(rel.measures, dm)
		rel.info.Measures = append(rel.info.Measures, mr)
	}
	if rel.threshold < 0 {
		k, nr, err := addPart(1, false)
		if err != nil {
			return nil, err
		}
		rel.threshold = k
		rel.info.Threshold = ThresholdRelease{Epsilon: nr.Epsilon, Rho: nr.Rho, Min: rel.min}
	}
	rel.info.Delta = thresholdDelta(rel.parts[rel.threshold], rel.min)
	if gauss != nil {
		rel.info.Delta += gauss.delta
	}
	rel.thresholds = []Threshold{{Dataset: from.ID, IdentityColumns: identityColumns(from.Descriptor.Schema), MinDistinctIdentities: rel.min}}
	return rel, nil
}

// thresholdDelta is the δ of releasing a group when its noisy count is at
// least min (sensitivity 1): a unit alone in a group that exists only with
// it makes the group appear with probability P[1 + Z ≥ min]. For discrete
// Laplace noise at ε that is e^(-ε(min-1)) / (1 + e^(-ε)); for the
// discrete Gaussian of variance parameter σ², at most e^(-(min-1)²/(2σ²))
// (it is subgaussian: Canonne, Kamath and Steinke 2020) (docs/spec/analysis.md
// §7).
func thresholdDelta(m privacy.Mechanism, min int) float64 {
	t := float64(min - 1)
	switch m := m.(type) {
	case *privacy.Laplace:
		e := m.Epsilon().Float64()
		return math.Exp(-e*t) / (1 + math.Exp(-e))
	case *privacy.Gaussian:
		s2, _ := m.Sigma2().Float64()
		return math.Exp(-t * t / (2 * s2))
	}
	return 1
}

// gaussianPlan is the ρ of a Gaussian release and its shares.
type gaussianPlan struct {
	total, share, half privacy.Rho
	delta              float64 // the δ of the zCDP to (ε, δ) conversion
}

// newGaussianPlan finds the ρ of a run at (ε, δ): ρ-zCDP implies
// (ρ + 2·√(ρ·ln(1/δ)), δ)-DP (Bun and Steinke 2016, proposition 1.3), so
// ρ = (√(ln(1/δ) + ε) − √ln(1/δ))², rounded down to 12 decimal places
// (less ρ is more noise: the guarantee only strengthens), then split over
// shares as ε is for Laplace.
func newGaussianPlan(a *collab.Analysis, eps privacy.Epsilon, shares int64) (*gaussianPlan, error) {
	d, err := a.Delta()
	if err != nil {
		return nil, err
	}
	delta, _ := d.Float64()
	l := math.Log(1 / delta)
	rho := math.Pow(math.Sqrt(l+eps.Float64())-math.Sqrt(l), 2) * (1 - 1e-9)
	total, err := privacy.ParseRho(strconv.FormatFloat(math.Floor(rho*1e12)/1e12, 'f', 12, 64))
	if err != nil || total.Rat().Sign() <= 0 {
		return nil, fmt.Errorf("no ρ for ε %s at δ %s", eps, a.Privacy.Delta)
	}
	g := &gaussianPlan{total: total, delta: delta}
	if g.share, err = privacy.ParseRho(new(big.Rat).Quo(total.Rat(), big.NewRat(shares, 1)).RatString()); err != nil {
		return nil, err
	}
	if g.half, err = privacy.ParseRho(new(big.Rat).Quo(g.share.Rat(), big.NewRat(2, 1)).RatString()); err != nil {
		return nil, err
	}
	return g, nil
}

// divide returns e/n exactly.
func divide(e privacy.Epsilon, n int64) (privacy.Epsilon, error) {
	r := e.Rat()
	r.Quo(r, big.NewRat(n, 1))
	var out privacy.Epsilon
	err := out.UnmarshalText([]byte(r.RatString()))
	return out, err
}

func absInt64(v int64) int64 {
	if v < 0 {
		if v == math.MinInt64 {
			return math.MaxInt64
		}
		return -v
	}
	return v
}

// compilePrivate compiles a declared analysis under privacy
// (docs/spec/analysis.md §7): the joined, filtered rows with each unit's
// rows cut to one, chosen by the smallest keyed hash of (unit, group) and
// then of the whole row, the key being a secret drawn per run and bound as
// the statement's last parameter; sums and averages clamp each value to
// the measure's clip range. The statement returns the group keys and one
// exact integer per noise part.
func (c *aggCompiler) compilePrivate(fromSQL string, where []string, dims []dim) (*plan, []Threshold, error) {
	inputs := map[int]string{}
	rel, err := c.release(dims, inputs)
	if err != nil {
		return nil, nil, err
	}
	from := c.in[0]
	var unit []string
	if ids := identityColumns(from.Descriptor.Schema); len(ids) > 0 {
		unit = []string{quoteIdent(from.ID) + "." + quoteIdent(ids[0])}
	} else {
		for _, col := range from.Descriptor.Schema.Columns {
			unit = append(unit, quoteIdent(from.ID)+"."+quoteIdent(col.Name))
		}
	}
	key := fmt.Sprintf("CAST($%d AS BIGINT)", len(c.params)+1)
	var inner, groupKeys, outer, groups []string
	for i, d := range dims {
		g := quoteIdent(fmt.Sprintf("%sg%d", hiddenPrefix, i))
		inner = append(inner, d.sql+" AS "+g)
		groupKeys = append(groupKeys, d.sql)
		outer = append(outer, g+" AS "+quoteIdent(d.name))
		groups = append(groups, g)
	}
	for i := range c.a.Aggregate.Measures {
		if in, ok := inputs[i]; ok {
			inner = append(inner, in+" AS "+quoteIdent(fmt.Sprintf("%sv%d", hiddenPrefix, i)))
		}
	}
	// The row is chosen by the hash of its expressions, not their aliases.
	rowExprs := slices.Clone(unit)
	for _, in := range inner {
		rowExprs = append(rowExprs, in[:strings.LastIndex(in, " AS ")])
	}
	byGroup := strings.Join(append(append([]string{key}, unit...), groupKeys...), ", ")
	byRow := strings.Join(append([]string{key}, rowExprs...), ", ")
	inner = append(inner, fmt.Sprintf("row_number() OVER (PARTITION BY %s ORDER BY hash(%s), hash(%s)) AS %s",
		strings.Join(unit, ", "), byGroup, byRow, quoteIdent(hiddenPrefix+"rn")))
	part := 0
	add := func(expr string) {
		outer = append(outer, expr+" AS "+quoteIdent(fmt.Sprintf("%sp%d", hiddenPrefix, part)))
		part++
	}
	for i, m := range c.a.Aggregate.Measures {
		v := quoteIdent(fmt.Sprintf("%sv%d", hiddenPrefix, i))
		switch m.Func {
		case collab.AggCount:
			add("count(*)")
		case collab.AggCountDistinctIdentities:
			add("count(DISTINCT " + v + ")")
		case collab.AggSum:
			add("sum(" + v + ")")
		case collab.AggAvg:
			add("sum(" + v + ")")
			add("count(" + v + ")")
		}
	}
	if part < len(rel.parts) {
		add("count(*)") // the hidden threshold count
	}
	sub := "(" + selectSQL(inner, fromSQL, where, nil) + ")"
	p := &plan{
		sql:    selectSQL(outer, sub, []string{quoteIdent(hiddenPrefix+"rn") + " = 1"}, groups),
		params: c.params,
		dp:     rel,
	}
	p.columns = make([]Column, 0, len(dims)+len(rel.measures))
	for _, d := range dims {
		p.columns = append(p.columns, Column{Name: d.name, Type: duckType(d.col.Type)})
	}
	for i, m := range c.a.Aggregate.Measures {
		t := "BIGINT"
		if rel.measures[i].fn == collab.AggAvg {
			t = "DOUBLE"
		}
		p.columns = append(p.columns, Column{Name: m.As, Type: t})
	}
	return p, rel.thresholds, nil
}

// apply adds noise to every group's exact integers, drawn from rnd
// (crypto/rand when nil) in the order of the groups' keys, and returns the
// rows of the groups whose noisy threshold count reaches the minimum,
// sorted. Groups below it are dropped without a trace: their number would
// tell how many groups exist.
func (d *dpRelease) apply(groups []exactGroup, rnd io.Reader) ([][]any, error) {
	keys := make([][]any, len(groups))
	for i, g := range groups {
		keys[i] = append(g.key[:len(g.key):len(g.key)], i)
	}
	sorted, err := sortRows(keys)
	if err != nil {
		return nil, err
	}
	rows := [][]any{}
	noisy := make([]int64, len(d.parts))
	for _, k := range sorted {
		g := groups[k[len(k)-1].(int)]
		if len(g.vals) != len(d.parts) {
			return nil, fmt.Errorf("%w: %d exact values for %d noise parts", ErrQueryFailed, len(g.vals), len(d.parts))
		}
		for i, lap := range d.parts {
			if noisy[i], err = privacy.AddNoise(g.vals[i], lap, rnd); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrQueryFailed, err)
			}
		}
		if noisy[d.threshold] < int64(d.min) {
			continue
		}
		row := append([]any{}, g.key...)
		for _, m := range d.measures {
			switch m.fn {
			case collab.AggAvg:
				sum, n := noisy[m.parts[0]], noisy[m.parts[1]]
				if n <= 0 {
					row = append(row, nil)
				} else {
					row = append(row, jsonFloat(float64(sum)/float64(n)))
				}
			default:
				row = append(row, json.Number(strconv.FormatInt(noisy[m.parts[0]], 10)))
			}
		}
		rows = append(rows, row)
	}
	return sortRows(rows)
}

// exactInt converts an exact integer scanned from DuckDB (BIGINT, or the
// HUGEINT of a sum) to an int64, clamped to ±2^62: clamping changes no
// sensitivity and keeps value plus noise inside int64.
func exactInt(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil // sum of no values
	case int64:
		return clampExact(x), nil
	case *big.Int:
		if x.Cmp(big.NewInt(exactLimit)) > 0 {
			return exactLimit, nil
		}
		if x.Cmp(big.NewInt(-exactLimit)) < 0 {
			return -exactLimit, nil
		}
		return x.Int64(), nil
	}
	return 0, fmt.Errorf("%w: an exact value is %T, not an integer", ErrQueryFailed, v)
}

// exactLimit bounds exact integers before noise.
const exactLimit = int64(1) << 62

// clampExact clamps an exact integer to ±2^62.
func clampExact(x int64) int64 {
	return min(max(x, -exactLimit), exactLimit)
}

// runKey draws the secret that chooses each unit's row, from rnd
// (crypto/rand when nil).
func runKey(rnd io.Reader) (int64, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var b [8]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return 0, fmt.Errorf("%w: %w: %w", ErrQueryFailed, privacy.ErrRandomness, err)
	}
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1), nil
}

// executePrivate runs a private plan: it draws the run's key, reads each
// group's exact integers, and releases them with noise.
func (e *Engine) executePrivate(ctx context.Context, p *plan, thresholds []Threshold) (*Result, error) {
	key, err := runKey(e.cfg.Rand)
	if err != nil {
		return nil, err
	}
	rows, err := e.conn.QueryContext(ctx, p.sql, append(slices.Clone(p.params), key)...)
	if err != nil {
		return nil, queryError(err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, queryError(err)
	}
	nDims := len(p.columns) - len(p.dp.measures)
	if len(types) != nDims+len(p.dp.parts) {
		return nil, fmt.Errorf("%w: the statement returned %d columns, want %d", ErrQueryFailed, len(types), nDims+len(p.dp.parts))
	}
	vals := make([]any, len(types))
	ptrs := make([]any, len(types))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var groups []exactGroup
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, queryError(err)
		}
		g := exactGroup{key: make([]any, nDims), vals: make([]int64, len(p.dp.parts))}
		for i := range g.key {
			if g.key[i], err = jsonValue(vals[i], types[i].DatabaseTypeName()); err != nil {
				return nil, fmt.Errorf("column %q: %w", types[i].Name(), err)
			}
		}
		for i := range g.vals {
			if g.vals[i], err = exactInt(vals[nDims+i]); err != nil {
				return nil, err
			}
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(err)
	}
	out, err := p.dp.apply(groups, e.cfg.Rand)
	if err != nil {
		return nil, err
	}
	return &Result{Columns: p.columns, Rows: out, Thresholds: thresholds, SQL: p.sql, Params: p.params, Privacy: p.dp.info}, nil
}
