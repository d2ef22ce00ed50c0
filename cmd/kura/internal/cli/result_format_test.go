package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/cmd/kura/internal/demo"
)

// checkResultFormats opens the result that the command open opens in every
// format and checks that each holds the same rows: JSON is the signed
// result as decrypted, CSV and Parquet have its columns (Parquet with their
// DuckDB types) and rows. A party that is no receiver gets no file in any
// format, and unknown formats are usage errors.
func checkResultFormats(t *testing.T, dir string, run func(...string) (int, string), open []string) {
	t.Helper()
	with := func(extra ...string) []string { return append(append([]string{}, open...), extra...) }
	jsonPath := filepath.Join(dir, "result.out.json")
	if code, out := run(with("-o", jsonPath)...); code != 0 {
		t.Fatalf("result open -o: exit %d\n%s", code, out)
	}
	plain, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeResult(plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) == 0 {
		t.Fatal("the result has no rows to compare")
	}
	var stdout, stderr strings.Builder
	code := Run(context.Background(), with("--format", "json"), Env{Stdout: &stdout, Stderr: &stderr})
	if code != 0 || stdout.String() != string(plain) || !strings.Contains(stderr.String(), "result of ") {
		t.Errorf("--format json: exit %d, stdout is the result: %v, report on stderr:\n%s", code, stdout.String() == string(plain), stderr.String())
	}
	stdout.Reset()
	code = Run(context.Background(), with("--format", "csv"), Env{Stdout: &stdout, Stderr: &stderr})
	recs, err := csv.NewReader(strings.NewReader(stdout.String())).ReadAll()
	if code != 0 || err != nil || len(recs) != len(r.Rows)+1 || recs[0][0] != r.Columns[0].Name {
		t.Errorf("--format csv: exit %d, %v, %d records for %d rows\n%s", code, err, len(recs), len(r.Rows), stdout.String())
	}
	var dash strings.Builder
	stderr.Reset()
	if code := Run(context.Background(), with("--format", "csv", "-o", "-"), Env{Stdout: &dash, Stderr: &stderr}); code != 0 || dash.String() != stdout.String() {
		t.Errorf("--format csv -o -: exit %d, wrote %q to stdout, want what --format csv prints\n%s", code, dash.String(), stderr.String())
	}
	csvPath := filepath.Join(dir, "result.csv")
	if code, out := run(with("--format", "csv", "-o", csvPath)...); code != 0 {
		t.Errorf("--format csv -o: exit %d\n%s", code, out)
	} else if b, _ := os.ReadFile(csvPath); !bytes.Equal(b, []byte(stdout.String())) {
		t.Error("--format csv -o wrote other bytes than it prints")
	}
	pq := filepath.Join(dir, "result.parquet")
	if code, out := run(with("--format", "parquet", "-o", pq)...); code != 0 {
		t.Fatalf("--format parquet: exit %d\n%s", code, out)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM read_parquet('" + pq + "')").Scan(&n); err != nil || n != len(r.Rows) {
		t.Errorf("parquet: %d rows (%v), want %d", n, err, len(r.Rows))
	}
	rows, err := db.Query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('" + pq + "'))")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for i := 0; rows.Next(); i++ {
		var name, typ string
		rows.Scan(&name, &typ)
		want := r.Columns[min(i, len(r.Columns)-1)].Type
		if want == "HUGEINT" {
			want = "DECIMAL(38,0)"
		}
		if i >= len(r.Columns) || name != r.Columns[i].Name || typ != want {
			t.Errorf("parquet column %d: %s %s, want %+v", i, name, typ, r.Columns)
		}
	}
	// Refusals: a format kura does not write, Parquet on stdout, and a
	// party that is no receiver (nothing written).
	if code, out := run(with("--format", "xml")...); code != ExitUsage || !strings.Contains(out, "want table, csv, json or parquet") {
		t.Errorf("--format xml: exit %d\n%s", code, out)
	}
	if code, out := run(with("--format", "parquet")...); code != ExitUsage || !strings.Contains(out, "give -o FILE") {
		t.Errorf("--format parquet without -o: exit %d\n%s", code, out)
	}
	mallory := with("--format", "csv", "-o", filepath.Join(dir, "mallory.csv"))
	for i, a := range mallory {
		if a == filepath.Join(dir, demo.Carrier) {
			mallory[i] = filepath.Join(dir, "mallory")
		}
	}
	if code, out := run(mallory...); code == 0 {
		t.Errorf("a party that is no receiver opened the result as CSV\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "mallory.csv")); err == nil {
		t.Error("a refused open wrote its file")
	}
}

// TestResultParquetTypes: every kind of value a result carries (analysis.Result's
// Rows) reaches Parquet as its column's type, NULLs and lists included.
func TestResultParquetTypes(t *testing.T) {
	plain := []byte(`{"analysis":"a","columns":[{"name":"s","type":"VARCHAR"},{"name":"n","type":"BIGINT"},{"name":"h","type":"HUGEINT"},` +
		`{"name":"d","type":"DOUBLE"},{"name":"day","type":"DATE"},{"name":"at","type":"TIMESTAMP"},{"name":"tags","type":"VARCHAR[]"},` +
		`{"name":"m","type":"DECIMAL(18,2)"},{"name":"ok","type":"BOOLEAN"}],` +
		`"rows":[["x, \"quoted\"",1,12345678901234567890123456789,"NaN","2026-05-01","2026-05-01T10:00:00Z",["a","b"],12.34,true],` +
		`[null,null,null,null,null,null,null,null,null]],"suppressed_rows":0,"thresholds":[],"sql":"SELECT 1"}`)
	path := filepath.Join(t.TempDir(), "r.parquet")
	if err := writeResultParquet(t.Context(), path, plain); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	q := "SELECT concat_ws('|', s, n, h, d, day, \"at\", tags, m, ok) FROM read_parquet('" + path + "') WHERE s IS NOT NULL"
	if err := db.QueryRow(q).Scan(&got); err != nil {
		t.Fatal(err)
	}
	want := `x, "quoted"|1|12345678901234567890123456789|nan|2026-05-01|2026-05-01 10:00:00|[a, b]|12.34|true`
	if got != want {
		t.Errorf("parquet row:\n got %s\nwant %s", got, want)
	}
	var nulls int
	if err := db.QueryRow("SELECT count(*) FROM read_parquet('" + path + "') WHERE s IS NULL AND tags IS NULL AND day IS NULL").Scan(&nulls); err != nil || nulls != 1 {
		t.Errorf("null row: %d (%v)", nulls, err)
	}
	var csvOut strings.Builder
	if err := writeResultCSV(&csvOut, plain); err != nil {
		t.Fatal(err)
	}
	wantCSV := "s,n,h,d,day,at,tags,m,ok\n\"x, \"\"quoted\"\"\",1,12345678901234567890123456789,NaN,2026-05-01,2026-05-01T10:00:00Z,\"[\"\"a\"\",\"\"b\"\"]\",12.34,true\n,,,,,,,,\n"
	if csvOut.String() != wantCSV {
		t.Errorf("csv:\n%s\nwant\n%s", csvOut.String(), wantCSV)
	}
	// A 128-bit integer too large for DECIMAL(38,0) is refused, not rounded.
	big := []byte(`{"columns":[{"name":"h","type":"HUGEINT"}],"rows":[[170141183460469231731687303715884105727]]}`)
	if err := writeResultParquet(t.Context(), filepath.Join(t.TempDir(), "big.parquet"), big); err == nil {
		t.Error("a HUGEINT beyond DECIMAL(38,0) was written")
	}
	if err := writeResultParquet(t.Context(), path, []byte(`{"columns":[{"name":"x","type":"INT); DROP TABLE result; --"}],"rows":[]}`)); err == nil || !strings.Contains(err.Error(), "unsupported type") {
		t.Errorf("a type that is no DuckDB type name: %v", err)
	}
}
