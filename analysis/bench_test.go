package analysis

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/scenario"
)

// benchRows is the number of rows per dataset: 1M, or KURA_BENCH_ROWS
// (e.g. 10000000).
func benchRows(b *testing.B) int {
	if s := os.Getenv("KURA_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("KURA_BENCH_ROWS=%q: want a positive integer", s)
		}
		return n
	}
	return 1_000_000
}

// benchAnalysis joins the datasets on phone and groups by destination and
// age band.
func benchAnalysis() collab.Analysis {
	return collab.Analysis{ID: "bench", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{
		From:    "flights",
		Joins:   []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
		GroupBy: []string{"flights.destination_area", "flights.age_band"},
		Measures: []collab.Measure{
			{Func: collab.AggCount, As: "n"},
			{Func: collab.AggCountDistinctIdentities, Dataset: "flights", As: "travellers"},
			{Func: collab.AggAvg, Column: "visits.stay_days", As: "avg_stay"},
		},
	}}
}

// benchPlain is the same query for plain DuckDB on the Parquet files.
const benchPlain = `SELECT f.destination_area, f.age_band, count(*), count(DISTINCT f.member_id), avg(v.stay_days)
FROM read_parquet(%s) f JOIN read_parquet(%s) v ON f.phone = v.phone GROUP BY ALL`

// benchPlainThresholds is benchPlain with the engine's threshold columns,
// to separate the cost of the output policy from the engine's own.
const benchPlainThresholds = `SELECT f.destination_area, f.age_band, count(*), count(DISTINCT f.member_id), avg(v.stay_days),
count(DISTINCT f.member_id), count(DISTINCT v.subscriber_id)
FROM read_parquet(%s) f JOIN read_parquet(%s) v ON f.phone = v.phone GROUP BY ALL`

// BenchmarkJoinGroupBy compares the engine end to end (open, load from
// memory files, lock down, run with the output policy, close) with plain
// DuckDB running the equivalent query on the Parquet files on disk. The
// memory files are filled outside the timer: that is the worker's
// decryption. maxrss-MB is the process's peak RSS so far (it only grows:
// compare consecutive sub-benchmarks).
func BenchmarkJoinGroupBy(b *testing.B) {
	rows := benchRows(b)
	ctx := context.Background()
	files, err := scenario.Generate(ctx, b.TempDir(), scenario.Config{Rows: rows, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	fx := &fixture{files: files, m: testManifest(benchAnalysis())}
	for _, plain := range []struct{ name, sql string }{{"plain-duckdb", benchPlain}, {"plain-duckdb-with-thresholds", benchPlainThresholds}} {
		b.Run(plain.name, func(b *testing.B) {
			for b.Loop() {
				db, err := sql.Open("duckdb", "")
				if err != nil {
					b.Fatal(err)
				}
				rs, err := db.QueryContext(ctx, fmt.Sprintf(plain.sql, quoteString(files.Flights), quoteString(files.Visits)))
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rs.Next() {
					n++
				}
				if err := rs.Err(); err != nil || n == 0 {
					b.Fatal(err, n)
				}
				rs.Close()
				db.Close()
			}
			reportRSS(b)
		})
	}
	for _, materialize := range []bool{false, true} {
		name := "engine-views"
		if materialize {
			name = "engine-materialize"
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				ff, vf := memCopy(b, files.Flights), memCopy(b, files.Visits)
				b.StartTimer()
				e, err := New(ctx, Config{Materialize: materialize})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.LoadParquet(ctx, "flights", scenario.FlightsSchema(), ff); err != nil {
					b.Fatal(err)
				}
				if err := e.LoadParquet(ctx, "visits", scenario.VisitsSchema(), vf); err != nil {
					b.Fatal(err)
				}
				res, err := e.Run(ctx, fx.m, "bench")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := res.Encode(); err != nil || len(res.Rows) == 0 {
					b.Fatal(err, len(res.Rows))
				}
				e.Close()
			}
			reportRSS(b)
		})
	}
}

func reportRSS(b *testing.B) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss-MB")
	}
}
