package analysis

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
)

// seeded is a reproducible stand-in for crypto/rand.
func seeded(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// privateByHome is byHome's shape under privacy: ε split over four
// measures, avg's share halved again.
func privateByHome(eps string) collab.Analysis {
	return collab.Analysis{ID: "dp", Kind: collab.KindAggregate, Privacy: &collab.Privacy{Epsilon: eps}, Aggregate: &collab.Aggregate{
		From:    "flights",
		Joins:   []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
		GroupBy: []string{"flights.home_prefecture"},
		Measures: []collab.Measure{
			{Func: collab.AggCount, As: "n"},
			{Func: collab.AggCountDistinctIdentities, Dataset: "visits", As: "subscribers"},
			{Func: collab.AggSum, Column: "visits.stay_days", As: "days", Clip: &collab.Clip{Min: 0, Max: 10}},
			{Func: collab.AggAvg, Column: "visits.stay_days", As: "avg_stay", Clip: &collab.Clip{Min: 0, Max: 10}},
		},
	}}
}

// TestPrivateRun: a private run is reproducible under a fixed seed,
// differs from the exact bounded values by plausible noise, and says how
// it was released.
func TestPrivateRun(t *testing.T) {
	ctx := context.Background()
	a := privateByHome("2")
	fx := newFixture(t, testRows, a)
	run := func(seed byte) *Result {
		res, err := fx.engine(t, Config{Rand: seeded(seed)}).Run(ctx, fx.m, "dp")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res, again, other := run(1), run(1), run(2)
	if res.Digest() != again.Digest() {
		t.Error("two runs with one seed differ")
	}
	if res.Digest() == other.Digest() {
		t.Error("two runs with different seeds agree: no noise?")
	}
	if !strings.Contains(res.SQL, "row_number() OVER (PARTITION BY \"flights\".\"member_id\" ORDER BY hash(") ||
		!strings.Contains(res.SQL, "LEAST(GREATEST(\"visits\".\"stay_days\", 0), 10)") {
		t.Errorf("SQL does not bound contributions or clamp: %s", res.SQL)
	}
	if len(res.Params) != 0 {
		t.Errorf("params %v: the run key must not be published", res.Params)
	}
	p := res.Privacy
	if p == nil || p.Epsilon != "2" || p.Mechanism != "discrete_laplace" || p.Unit != "flights.member_id" || len(p.Measures) != 4 ||
		p.Measures[0].Epsilon != "0.5" || p.Measures[3].Noise[0].Epsilon != "0.25" || p.Measures[2].Noise[0].Sensitivity != 10 ||
		p.Threshold.Measure != "n" || p.Threshold.Min != 10 || p.Threshold.Epsilon != "0.5" {
		t.Fatalf("privacy %+v", p)
	}
	if want := math.Exp(-0.5*9) / (1 + math.Exp(-0.5)); math.Abs(p.Delta-want) > 1e-15 {
		t.Errorf("delta %g, want %g", p.Delta, want)
	}
	if res.SuppressedRows != 0 {
		t.Errorf("suppressed_rows %d under privacy", res.SuppressedRows)
	}
	if got := jsonText(t, res.Columns); got != `[{"name":"home_prefecture","type":"VARCHAR"},{"name":"n","type":"BIGINT"},{"name":"subscribers","type":"BIGINT"},{"name":"days","type":"BIGINT"},{"name":"avg_stay","type":"DOUBLE"}]` {
		t.Errorf("columns %s", got)
	}

	// The exact values: the same statement, with the same key, in plain
	// DuckDB.
	key, _ := runKey(seeded(1))
	exact := map[string][]int64{}
	for _, row := range plain(t, fx, res.SQL, key) {
		var vals []int64
		for _, v := range row[1:] {
			vals = append(vals, number(t, v))
		}
		exact[row[0].(string)] = vals
	}
	if len(res.Rows) == 0 || len(res.Rows) > len(exact) {
		t.Fatalf("%d rows released of %d groups", len(res.Rows), len(exact))
	}
	for _, row := range res.Rows {
		x := exact[row[0].(string)]
		// 12 scales: exceeded with probability below 2e-5 per value.
		for i, scale := range []float64{2, 2, 20} {
			if d := math.Abs(float64(number(t, row[1+i]) - x[i])); d > 12*scale {
				t.Errorf("group %v measure %d: noisy %v, exact %d: off by %g", row[0], i, row[1+i], x[i], d)
			}
		}
		if x[0] < 10-24 {
			t.Errorf("group %v released with an exact count of %d", row[0], x[0])
		}
		if avg, ok := row[4].(float64); ok && (avg < -5 || avg > 15) {
			t.Errorf("group %v: avg %g far outside the clip range", row[0], avg)
		}
	}
}

// writeParquet writes the rows of query q as a Parquet file.
func writeParquet(t *testing.T, q string) string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	path := filepath.Join(t.TempDir(), "d.parquet")
	if _, err := db.Exec("COPY (" + q + ") TO " + quoteString(path) + " (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestContributionBounding: at ε = 100 the noise is 0 (with probability
// 1 - 1e-43), so the released values are the bounded exact ones: an
// identity in three groups is counted once, each value is clamped, and a
// group below the minimum is dropped without being counted.
func TestContributionBounding(t *testing.T) {
	ctx := context.Background()
	// Groups a, b, c hold 20 people each with amount 1000 (clamped to 10);
	// "u" has one row in each of them; group d holds 3 people.
	path := writeParquet(t, `
SELECT 'p' || i AS id, ['a','b','c'][i % 3 + 1] AS grp, CAST(1000 AS BIGINT) AS amount FROM range(60) t(i)
UNION ALL SELECT 'u', g, CAST(-5 AS BIGINT) FROM (VALUES ('a'), ('b'), ('c')) v(g)
UNION ALL SELECT 'q' || i, 'd', CAST(1 AS BIGINT) FROM range(3) t(i)
UNION ALL SELECT 'n' || i, 'a', NULL FROM range(2) t(i)`)
	schema := schemaOf(
		table.Column{Name: "id", Type: table.String, Identity: true},
		table.Column{Name: "grp", Type: table.String},
		table.Column{Name: "amount", Type: table.Int64},
	)
	a := collab.Analysis{ID: "dp", Kind: collab.KindAggregate, Privacy: &collab.Privacy{Epsilon: "100"}, Aggregate: &collab.Aggregate{
		From: "people", GroupBy: []string{"people.grp"},
		Measures: []collab.Measure{
			{Func: collab.AggCount, As: "n"},
			{Func: collab.AggSum, Column: "people.amount", As: "total", Clip: &collab.Clip{Min: 0, Max: 10}},
		},
	}}
	m := &collab.Manifest{Format: collab.FormatVersion, ID: "t", Analyses: []collab.Analysis{a},
		Datasets: []collab.Dataset{{ID: "people", Owner: "o", Descriptor: collab.Descriptor{DatasetID: "people", Schema: schema},
			OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 10}}}}
	e, err := New(ctx, Config{Rand: seeded(3)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.LoadParquet(ctx, "people", schema, memCopy(t, path)); err != nil {
		t.Fatal(err)
	}
	res, err := e.Run(ctx, m, "dp")
	if err != nil {
		t.Fatal(err)
	}
	var n, total int64
	for _, row := range res.Rows {
		n += number(t, row[1])
		total += number(t, row[2])
		if row[0] == "d" {
			t.Error("group d, with 3 people, was released")
		}
	}
	// 60 people + u once + 2 with no amount; sums: 60·10 + u's clamped 0.
	if len(res.Rows) != 3 || n != 63 || total != 600 || res.SuppressedRows != 0 {
		t.Errorf("rows %v (suppressed %d): want 3 groups counting 63 people once each, total 600", res.Rows, res.SuppressedRows)
	}
}

// TestPrivacyRefusals: under privacy, sum and avg need an int64 column and
// a clip range; min and max are not released.
func TestPrivacyRefusals(t *testing.T) {
	schema := schemaOf(
		table.Column{Name: "id", Type: table.String, Identity: true},
		table.Column{Name: "x", Type: table.Double},
		table.Column{Name: "k", Type: table.Int64},
	)
	for _, tt := range []struct {
		name string
		ms   collab.Measure
		want string
	}{
		{"double column", collab.Measure{Func: collab.AggSum, Column: "d.x", As: "s", Clip: &collab.Clip{Max: 1}}, "needs an int64 column"},
		{"no clip", collab.Measure{Func: collab.AggAvg, Column: "d.k", As: "s"}, "needs clip"},
		{"max", collab.Measure{Func: collab.AggMax, Column: "d.k", As: "s"}, "cannot be released with differential privacy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := collab.Analysis{ID: "dp", Kind: collab.KindAggregate, Privacy: &collab.Privacy{Epsilon: "1"},
				Aggregate: &collab.Aggregate{From: "d", Measures: []collab.Measure{tt.ms}}}
			m := &collab.Manifest{Format: collab.FormatVersion, ID: "t", Analyses: []collab.Analysis{a},
				Datasets: []collab.Dataset{{ID: "d", Owner: "o", Descriptor: collab.Descriptor{DatasetID: "d", Schema: schema}}}}
			err := Check(context.Background(), m)
			if !errors.Is(err, ErrInvalidAnalysis) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check = %v, want %q", err, tt.want)
			}
		})
	}
}

// countsManifest is a manifest whose analysis counts distinct identities
// of both datasets by visits.area, as the cryptographic backend does.
func countsManifest(eps string) *collab.Manifest {
	a := collab.Analysis{ID: "psi", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{
		From:    "flights",
		Joins:   []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
		GroupBy: []string{"visits.area"},
		Measures: []collab.Measure{
			{Func: collab.AggCountDistinctIdentities, Dataset: "flights", As: "travellers"},
			{Func: collab.AggCountDistinctIdentities, Dataset: "visits", As: "subscribers"},
		},
	}}
	if eps != "" {
		a.Privacy = &collab.Privacy{Epsilon: eps}
	}
	return testManifest(a)
}

// counts is one Exact per count measure.
func counts(n ...int64) []Exact {
	out := make([]Exact, len(n))
	for i, x := range n {
		out[i].Count = x
	}
	return out
}

// TestReleaseExactCounts: exact counts are released as the engine
// releases counts, suppressed by the group's number of units without
// privacy, with noise and a noisy threshold with it.
func TestReleaseExactCounts(t *testing.T) {
	groups := []Group{
		{Key: []any{"okinawa"}, IDs: 118, Values: counts(120, 118)},
		{Key: []any{"hokkaido"}, IDs: 9, Values: counts(40, 9)},
		{Key: []any{"fukuoka"}, IDs: 2, Values: counts(3, 2)},
	}
	plainRes, err := ReleaseExact(countsManifest(""), "psi", groups, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := plainRes.Encode()
	want := `{"analysis":"psi","columns":[{"name":"area","type":"VARCHAR"},{"name":"travellers","type":"BIGINT"},{"name":"subscribers","type":"BIGINT"}],` +
		`"rows":[["okinawa",120,118]],"suppressed_rows":2,` +
		`"thresholds":[{"dataset":"flights","identity_columns":["member_id"],"min_distinct_identities":10},{"dataset":"visits","identity_columns":["subscriber_id"],"min_distinct_identities":10}],"sql":""}`
	if string(b) != want {
		t.Errorf("without privacy:\n got %s\nwant %s", b, want)
	}

	m := countsManifest("1")
	res, err := ReleaseExact(m, "psi", groups, seeded(9))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ReleaseExact(m, "psi", groups, seeded(9))
	if res.Digest() != again.Digest() {
		t.Error("not reproducible under a fixed seed")
	}
	if res.Privacy == nil || res.Privacy.Threshold.Measure != "travellers" || res.SuppressedRows != 0 || len(res.Rows) < 1 {
		t.Fatalf("with privacy: %+v", res)
	}
	for _, row := range res.Rows {
		if row[0] == "fukuoka" {
			t.Error("a group of 3 passed a noisy threshold of 10 at ε/2 = 0.5 (probability ~1e-2 per seed; this seed should not)")
		}
	}
	if _, err := ReleaseExact(m, "psi", []Group{{Key: []any{"x"}, IDs: 1, Values: counts(1)}}, nil); !errors.Is(err, ErrInvalidAnalysis) {
		t.Errorf("a group with one count for two measures: %v", err)
	}
	if _, err := ReleaseExact(m, "psi", []Group{{Key: []any{"x"}, IDs: -1, Values: counts(1, 1)}}, nil); !errors.Is(err, ErrInvalidAnalysis) {
		t.Errorf("a group of -1 units: %v", err)
	}
}

// TestReleaseExactNoise: the noise ReleaseExact adds to a count is
// discrete Laplace at the count's share of ε: over 20000 releases from a
// fixed seed, a chi-square test of its histogram against
// P(z) = (1-q)/(1+q)·q^|z|, q = e^(-ε/k), passes at the 0.1% level, and
// its variance is 2q/(1-q)² within 5%.
func TestReleaseExactNoise(t *testing.T) {
	m := countsManifest("1") // two measures: ε/k = 0.5
	const n, exact = 20000, 1000
	groups := []Group{{Key: []any{"okinawa"}, IDs: exact, Values: counts(exact, exact)}}
	r := seeded(42)
	hist := map[int64]int{}
	var sumSq float64
	for range n {
		res, err := ReleaseExact(m, "psi", groups, r)
		if err != nil {
			t.Fatal(err)
		}
		z := number(t, res.Rows[0][1]) - exact
		hist[z]++
		sumSq += float64(z * z)
	}
	q := math.Exp(-0.5)
	pmf := func(z int64) float64 { return (1 - q) / (1 + q) * math.Pow(q, math.Abs(float64(z))) }
	// Bins -10..10, and the two tails.
	var chi2, tailLo, tailHi float64
	var obsLo, obsHi int
	for z, c := range hist {
		switch {
		case z < -10:
			obsLo += c
		case z > 10:
			obsHi += c
		}
	}
	for z := int64(-10); z <= 10; z++ {
		e := n * pmf(z)
		d := float64(hist[z]) - e
		chi2 += d * d / e
	}
	tailHi = n * math.Pow(q, 11) / (1 + q) // P(Z ≥ 11)
	tailLo = tailHi
	chi2 += math.Pow(float64(obsLo)-tailLo, 2)/tailLo + math.Pow(float64(obsHi)-tailHi, 2)/tailHi
	// 22 degrees of freedom: the 99.9th percentile is 48.27.
	if chi2 > 48.27 {
		t.Errorf("chi-square %.1f over 23 bins: the noise is not discrete Laplace at ε = 0.5 (histogram %v)", chi2, hist)
	}
	variance := sumSq / n
	if want := 2 * q / ((1 - q) * (1 - q)); math.Abs(variance-want)/want > 0.05 {
		t.Errorf("variance %.3f, want %.3f", variance, want)
	}
	// The same test rejects the wrong ε: noise at ε = 1 would be far
	// narrower.
	if q1 := math.Exp(-1); math.Abs(variance-2*q1/((1-q1)*(1-q1)))/variance < 0.5 {
		t.Error("the variance does not tell ε = 0.5 from ε = 1")
	}
	t.Logf("chi-square %.2f (df 22), variance %.3f", chi2, variance)
}

// sumsAnalysis is an analysis the cryptographic backend computes with
// sums: travellers by home prefecture, and the sum and average of the
// carrier's stay_days over them (visits holds no group-by column).
func sumsAnalysis(eps string, measures ...collab.Measure) collab.Analysis {
	if len(measures) == 0 {
		measures = []collab.Measure{
			{Func: collab.AggCountDistinctIdentities, Dataset: "flights", As: "travellers"},
			{Func: collab.AggSum, Column: "visits.stay_days", As: "days", Clip: &collab.Clip{Min: 0, Max: 10}},
			{Func: collab.AggAvg, Column: "visits.stay_days", As: "avg_stay", Clip: &collab.Clip{Min: 0, Max: 10}},
		}
	}
	a := collab.Analysis{ID: "sums", Kind: collab.KindAggregate, Backend: collab.BackendMPC, Aggregate: &collab.Aggregate{
		From:     "flights",
		Joins:    []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
		GroupBy:  []string{"flights.home_prefecture"},
		Measures: measures,
	}}
	if eps != "" {
		a.Privacy = &collab.Privacy{Epsilon: eps}
	}
	return a
}

// TestReleaseExactSums: without privacy, exact sums and averages are output
// as they are, an average of no values is null, and a group is suppressed
// by its number of units whatever its measures say.
func TestReleaseExactSums(t *testing.T) {
	groups := []Group{
		{Key: []any{"Tokyo"}, IDs: 50, Values: []Exact{{Count: 50}, {Sum: 120}, {Sum: 120, Count: 48}}},
		{Key: []any{"Osaka"}, IDs: 10, Values: []Exact{{Count: 10}, {Sum: 0}, {Sum: 0, Count: 0}}},
		{Key: []any{"Kyoto"}, IDs: 9, Values: []Exact{{Count: 900}, {Sum: -7}, {Sum: -7, Count: 2}}},
	}
	res, err := ReleaseExact(testManifest(sumsAnalysis("")), "sums", groups, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := res.Encode()
	want := `{"analysis":"sums","columns":[{"name":"home_prefecture","type":"VARCHAR"},{"name":"travellers","type":"BIGINT"},{"name":"days","type":"HUGEINT"},{"name":"avg_stay","type":"DOUBLE"}],` +
		`"rows":[["Osaka",10,0,null],["Tokyo",50,120,2.5]],"suppressed_rows":1,` +
		`"thresholds":[{"dataset":"flights","identity_columns":["member_id"],"min_distinct_identities":10},{"dataset":"visits","identity_columns":["subscriber_id"],"min_distinct_identities":10}],"sql":""}`
	if string(b) != want {
		t.Errorf("without privacy:\n got %s\nwant %s", b, want)
	}

	// With only sums, the threshold still reads the group's units.
	sumOnly := sumsAnalysis("", collab.Measure{Func: collab.AggSum, Column: "visits.stay_days", As: "days", Clip: &collab.Clip{Min: -5, Max: 10}})
	res, err = ReleaseExact(testManifest(sumOnly), "sums", []Group{
		{Key: []any{"Tokyo"}, IDs: 10, Values: []Exact{{Sum: -40}}},
		{Key: []any{"Osaka"}, IDs: 9, Values: []Exact{{Sum: 1000}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonText(t, res.Rows); got != `[["Tokyo",-40]]` || res.SuppressedRows != 1 {
		t.Errorf("sum only: rows %s, suppressed %d", got, res.SuppressedRows)
	}

	for _, tt := range []struct {
		name string
		ms   collab.Measure
		want string
	}{
		{"max", collab.Measure{Func: collab.AggMax, Column: "visits.stay_days", As: "m"}, "only count, count_distinct_identities, sum and avg"},
		{"date", collab.Measure{Func: collab.AggSum, Column: "visits.arrival_date", As: "m"}, "the column is date"},
		{"identity", collab.Measure{Func: collab.AggSum, Column: "visits.subscriber_id", As: "m"}, "is an identity column"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReleaseExact(testManifest(sumsAnalysis("", tt.ms)), "sums", nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ReleaseExact = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestReleaseExactLikeEngine: for the same analysis, ReleaseExact's result
// has the engine's columns, thresholds and, under privacy, the same
// privacy block: a receiver sees one shape from either backend.
func TestReleaseExactLikeEngine(t *testing.T) {
	ctx := context.Background()
	for _, eps := range []string{"", "1"} {
		a := sumsAnalysis(eps)
		fx := newFixture(t, 2000, a)
		e := fx.engine(t, Config{Rand: seeded(1)})
		engine, err := e.Run(ctx, fx.m, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		exact, err := ReleaseExact(fx.m, a.ID, []Group{{Key: []any{"Tokyo"}, IDs: 50, Values: []Exact{{Count: 50}, {Sum: 120}, {Sum: 120, Count: 48}}}}, seeded(1))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []struct {
			what         string
			engine, mine any
		}{
			{"columns", engine.Columns, exact.Columns},
			{"thresholds", engine.Thresholds, exact.Thresholds},
			{"privacy", engine.Privacy, exact.Privacy},
		} {
			if got, want := jsonText(t, v.mine), jsonText(t, v.engine); got != want {
				t.Errorf("privacy %q: %s\n got %s\nwant %s (the engine's)", eps, v.what, got, want)
			}
		}
	}
}

// TestReleaseExactSumsPrivate: under privacy, sums and averages get the
// engine's noise: reproducible from a seed, within plausible distance of
// the exact values at ε = 1, exact at ε = 100 (noise 0 with probability
// 1 - 1e-20), and when every measure is a sum the group's units are the
// hidden threshold count.
func TestReleaseExactSumsPrivate(t *testing.T) {
	groups := []Group{
		{Key: []any{"Tokyo"}, IDs: 500, Values: []Exact{{Count: 500}, {Sum: 2000}, {Sum: 2000, Count: 400}}},
		{Key: []any{"Osaka"}, IDs: 300, Values: []Exact{{Count: 300}, {Sum: 900}, {Sum: 900, Count: 300}}},
		{Key: []any{"Kyoto"}, IDs: 1, Values: []Exact{{Count: 1}, {Sum: 10}, {Sum: 10, Count: 1}}},
	}
	m := testManifest(sumsAnalysis("1"))
	res, err := ReleaseExact(m, "sums", groups, seeded(5))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ReleaseExact(m, "sums", groups, seeded(5))
	other, _ := ReleaseExact(m, "sums", groups, seeded(6))
	if res.Digest() != again.Digest() {
		t.Error("not reproducible under a fixed seed")
	}
	if res.Digest() == other.Digest() {
		t.Error("two seeds agree: no noise?")
	}
	p := res.Privacy
	if p == nil || p.Threshold.Measure != "travellers" || p.Measures[1].Noise[0].Sensitivity != 10 || p.Measures[2].Noise[1].Epsilon != "1/6" {
		t.Fatalf("privacy %s", jsonText(t, p))
	}
	if got := jsonText(t, res.Columns); got != `[{"name":"home_prefecture","type":"VARCHAR"},{"name":"travellers","type":"BIGINT"},{"name":"days","type":"BIGINT"},{"name":"avg_stay","type":"DOUBLE"}]` {
		t.Errorf("columns %s", got)
	}
	if len(res.Rows) != 2 {
		t.Fatalf("rows %v: want Tokyo and Osaka, not Kyoto's single unit", res.Rows)
	}
	for i, g := range []Group{groups[1], groups[0]} { // sorted by key
		row := res.Rows[i]
		// ε/3 per measure: scales 3 (count) and 30 (sum); 12 scales are
		// exceeded with probability below 1e-5 per value.
		if d := math.Abs(float64(number(t, row[1]) - g.Values[0].Count)); d > 36 {
			t.Errorf("%v: travellers off by %g", row[0], d)
		}
		if d := math.Abs(float64(number(t, row[2]) - g.Values[1].Sum)); d > 360 {
			t.Errorf("%v: days off by %g", row[0], d)
		}
		exactAvg := float64(g.Values[2].Sum) / float64(g.Values[2].Count)
		if avg, ok := row[3].(float64); !ok || math.Abs(avg-exactAvg) > 2 {
			t.Errorf("%v: avg %v, exact %g", row[0], row[3], exactAvg)
		}
	}

	// At ε = 100 with only a sum, ε splits over the sum and a hidden
	// count of the units: the released sum is exact, and a group of 9
	// units stays below the threshold of 10.
	sumOnly := sumsAnalysis("100", collab.Measure{Func: collab.AggSum, Column: "visits.stay_days", As: "days", Clip: &collab.Clip{Min: -5, Max: 10}})
	res, err = ReleaseExact(testManifest(sumOnly), "sums", []Group{
		{Key: []any{"Tokyo"}, IDs: 10, Values: []Exact{{Sum: -40}}},
		{Key: []any{"Osaka"}, IDs: 9, Values: []Exact{{Sum: 1000}}},
	}, seeded(7))
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonText(t, res.Rows); got != `[["Tokyo",-40]]` || res.SuppressedRows != 0 {
		t.Errorf("sum only: rows %s, suppressed %d", got, res.SuppressedRows)
	}
	if p := res.Privacy; p.Threshold.Measure != "" || p.Threshold.Epsilon != "50" || p.Measures[0].Noise[0].Sensitivity != 10 {
		t.Errorf("sum only: privacy %s", jsonText(t, p))
	}
}

// TestResultEncodingWithoutPrivacy: a result without privacy encodes
// without the member.
func TestResultEncodingWithoutPrivacy(t *testing.T) {
	b, err := (&Result{AnalysisID: "a"}).Encode()
	if err != nil || strings.Contains(string(b), "privacy") {
		t.Errorf("%s, %v", b, err)
	}
}

// TestReleaseExactGaussian: with mechanism gaussian, ρ is the largest
// (rounded down) whose zCDP-to-(ε, δ) conversion fits ε and δ, it is split
// over the measures, the noise has the discrete Gaussian's variance σ² =
// Δ²/(2ρ) per part (within sampling error over many releases), and the
// reported δ adds the noisy threshold's tail bound to the conversion's δ.
func TestReleaseExactGaussian(t *testing.T) {
	m := countsManifest("1")
	m.Analyses[0].Privacy = &collab.Privacy{Epsilon: "1", Mechanism: collab.MechanismGaussian, Delta: "0.000001"}
	const n, exact = 20000, 1000
	groups := []Group{{Key: []any{"okinawa"}, IDs: exact, Values: counts(exact, exact)}}
	r := seeded(43)
	var sumSq float64
	var p *PrivacyRelease
	for range n {
		res, err := ReleaseExact(m, "psi", groups, r)
		if err != nil {
			t.Fatal(err)
		}
		z := number(t, res.Rows[0][1]) - exact
		sumSq += float64(z * z)
		p = res.Privacy
	}
	l := math.Log(1e6)
	rho := math.Pow(math.Sqrt(l+1)-math.Sqrt(l), 2)
	total, _ := new(big.Rat).SetString(p.Rho)
	got, _ := total.Float64()
	if p.Mechanism != MechanismDiscreteGaussian || got > rho || got < rho*(1-1e-6) {
		t.Fatalf("privacy %s: ρ %g, want just below %g", jsonText(t, p), got, rho)
	}
	// ρ + 2√(ρ ln(1/δ)) ≤ ε: the conversion holds at the rounded ρ.
	if e := got + 2*math.Sqrt(got*l); e > 1 {
		t.Fatalf("ρ %g converts to ε %g > 1", got, e)
	}
	share, _ := new(big.Rat).SetString(p.Measures[0].Rho)
	s, _ := share.Float64()
	if math.Abs(s-got/2) > 1e-15 || p.Measures[0].Epsilon != "" || p.Measures[0].Noise[0].Rho != p.Measures[0].Rho {
		t.Fatalf("measure share %s of %s: want half, as ρ", p.Measures[0].Rho, p.Rho)
	}
	sigma2 := 1 / (2 * s)
	if variance := sumSq / n; math.Abs(variance-sigma2)/sigma2 > 0.05 {
		t.Errorf("variance %.2f, want σ² = %.2f", variance, sigma2)
	}
	if want := 1e-6 + math.Exp(-float64(p.Threshold.Min-1)*float64(p.Threshold.Min-1)/(2*sigma2)); math.Abs(p.Delta-want) > 1e-12 {
		t.Errorf("δ %g, want %g", p.Delta, want)
	}
	t.Logf("ρ %s, σ² %.2f, variance %.2f, δ %.3g", p.Rho, sigma2, sumSq/n, p.Delta)
}
