package analysis

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"testing"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/scenario"
)

// fixture is the scenario data on disk and a manifest over it.
type fixture struct {
	files *scenario.Files
	m     *collab.Manifest
}

// newFixture generates the airline and carrier datasets (rows each) and a
// manifest: flights owned by the airline (minimum 10 distinct identities),
// visits owned by the carrier (minimum 5), with the given analyses.
func newFixture(t testing.TB, rows int, analyses ...collab.Analysis) *fixture {
	t.Helper()
	files, err := scenario.Generate(context.Background(), t.TempDir(), scenario.Config{Rows: rows, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{files: files, m: testManifest(analyses...)}
}

func testManifest(analyses ...collab.Analysis) *collab.Manifest {
	return &collab.Manifest{
		Format: collab.FormatVersion, ID: "test",
		Datasets: []collab.Dataset{
			{ID: "flights", Owner: "airline", Descriptor: collab.Descriptor{DatasetID: "flights", Schema: scenario.FlightsSchema()},
				OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 10}},
			{ID: "visits", Owner: "carrier", Descriptor: collab.Descriptor{DatasetID: "visits", Schema: scenario.VisitsSchema()},
				OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 5}},
		},
		Analyses: analyses,
	}
}

// sqlAnalysis is a custom SQL analysis reading both datasets.
func sqlAnalysis(id, q string) collab.Analysis {
	return collab.Analysis{ID: id, Kind: collab.KindSQL, SQL: q, Reads: []string{"flights", "visits"}}
}

// memCopy copies a file into a new memory file.
func memCopy(t testing.TB, path string) *os.File {
	t.Helper()
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f, err := MemFile("test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		t.Fatal(err)
	}
	return f
}

// engine returns an engine with both datasets loaded.
func (fx *fixture) engine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	ctx := context.Background()
	e, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.LoadParquet(ctx, "flights", scenario.FlightsSchema(), memCopy(t, fx.files.Flights)); err != nil {
		t.Fatal(err)
	}
	if err := e.LoadParquet(ctx, "visits", scenario.VisitsSchema(), memCopy(t, fx.files.Visits)); err != nil {
		t.Fatal(err)
	}
	return e
}

// plain runs a query with plain DuckDB, where {flights} and {visits} name
// the Parquet files on disk, and returns its rows as JSON-safe values.
func plain(t testing.TB, fx *fixture, q string, args ...any) [][]any {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, v := range []struct{ name, path string }{{"flights", fx.files.Flights}, {"visits", fx.files.Visits}} {
		if _, err := db.Exec("CREATE VIEW " + v.name + " AS SELECT * FROM read_parquet(" + quoteString(v.path) + ")"); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	types, _ := rows.ColumnTypes()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i := range vals {
			if vals[i], err = jsonValue(vals[i], types[i].DatabaseTypeName()); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// number returns a JSON-safe integer value as an int64.
func number(t testing.TB, v any) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatal(err)
	}
	return i
}

// jsonText returns v as JSON.
func jsonText(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// schemaOf is a shorthand for a one-column schema.
func schemaOf(cols ...table.Column) *table.Schema { return &table.Schema{Columns: cols} }
