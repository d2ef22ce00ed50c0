package convert

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/kura-cc/kura/dataset/table"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const schemaYAML = `
default_country_code: "81"
columns:
  - name: email
    type: string
    identity: true
    join: true
    normalize: [trim, lower]
  - name: phone
    type: string
    identity: true
    join: true
    normalize: [trim, e164]
  - name: name
    type: string
  - name: visits
    type: int64
  - name: score
    type: double
  - name: member
    type: bool
  - name: since
    type: date
  - name: seen
    type: timestamp
`

const csvInput = `email,phone,name,visits,score,member,since,seen
  Alice@Example.COM ,090-1234-5678,蔵の主,3,1.5,true,2024-01-02,2024-01-02 03:04:05
bob@example.com,+44 20 7946 0958,Émile Zola,,2.25,false,2023-12-31,2024-06-30T12:00:00
　ÇA@Example.jp　,0081 3 1234 5678,"quote "" and, comma",7,,,,
`

// want is csvInput after conversion, read back as text.
var want = [][]string{
	{"alice@example.com", "+819012345678", "蔵の主", "3", "1.5", "true", "2024-01-02", "2024-01-02 03:04:05"},
	{"bob@example.com", "+442079460958", "Émile Zola", "NULL", "2.25", "false", "2023-12-31", "2024-06-30 12:00:00"},
	{"ça@example.jp", "+81312345678", `quote " and, comma`, "7", "NULL", "NULL", "NULL", "NULL"},
}

func mustSchema(t *testing.T, s string) *table.Schema {
	t.Helper()
	sc, err := table.ParseSchema([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// readParquet returns the rows of a Parquet file as text.
func readParquet(t *testing.T, path string) [][]string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT * FROM read_parquet(" + quote(path) + ")")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var row []string
		for _, v := range vals {
			switch v.(type) {
			case nil:
				row = append(row, "NULL")
			default:
				row = append(row, fmt.Sprint(v))
			}
		}
		out = append(out, row)
	}
	return out
}

func write(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func convert(t *testing.T, in string, sc *table.Schema) (string, *Result, error) {
	t.Helper()
	out := filepath.Join(filepath.Dir(in), "out-"+filepath.Base(in)+".parquet")
	res, err := Convert(context.Background(), Config{Threads: 2}, in, "", sc, out)
	return out, res, err
}

func normalizeTimes(rows [][]string) [][]string {
	for _, r := range rows {
		for i, v := range r {
			// time.Time prints as "2024-01-02 00:00:00 +0000 UTC"
			v = strings.TrimSuffix(v, " +0000 UTC")
			if i == 6 {
				v = strings.TrimSuffix(v, " 00:00:00")
			}
			r[i] = v
		}
	}
	return rows
}

func TestConvertFormats(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	dir := t.TempDir()
	csvPath := write(t, dir, "in.csv", csvInput)
	pq, res, err := convert(t, csvPath, sc)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 3 {
		t.Fatalf("%d rows", res.Rows)
	}
	if got := normalizeTimes(readParquet(t, pq)); !reflect.DeepEqual(got, want) {
		t.Fatalf("CSV: got\n%q\nwant\n%q", got, want)
	}

	// Parquet in: our own output converts to the same.
	pqIn := filepath.Join(dir, "in.parquet")
	os.Rename(pq, pqIn)
	pq2, _, err := convert(t, pqIn, sc)
	if err != nil {
		t.Fatal(err)
	}
	if got := normalizeTimes(readParquet(t, pq2)); !reflect.DeepEqual(got, want) {
		t.Fatalf("Parquet: got\n%q", got)
	}

	jsonl := `{"email":"  Alice@Example.COM ","phone":"090-1234-5678","name":"蔵の主","visits":3,"score":1.5,"member":true,"since":"2024-01-02","seen":"2024-01-02 03:04:05"}
{"email":"bob@example.com","phone":"+44 20 7946 0958","name":"Émile Zola","visits":null,"score":2.25,"member":false,"since":"2023-12-31","seen":"2024-06-30T12:00:00"}
{"email":"　ÇA@Example.jp　","phone":"0081 3 1234 5678","name":"quote \" and, comma","visits":7}
`
	pq3, _, err := convert(t, write(t, dir, "in.jsonl", jsonl), sc)
	if err != nil {
		t.Fatal(err)
	}
	if got := normalizeTimes(readParquet(t, pq3)); !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON lines: got\n%q", got)
	}
}

func TestConvertEmpty(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	dir := t.TempDir()
	for name, data := range map[string]string{
		"empty.csv":       "",
		"header-only.csv": "email,phone,name,visits,score,member,since,seen\n",
		"empty.jsonl":     "\n",
	} {
		t.Run(name, func(t *testing.T) {
			pq, res, err := convert(t, write(t, dir, name, data), sc)
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows != 0 || len(readParquet(t, pq)) != 0 {
				t.Fatalf("rows: %d", res.Rows)
			}
			// The empty Parquet converts again (Parquet round trip of an empty file).
			pqIn := filepath.Join(dir, name+".parquet")
			os.Rename(pq, pqIn)
			if _, res, err := convert(t, pqIn, sc); err != nil || res.Rows != 0 {
				t.Fatalf("empty parquet: %v", err)
			}
		})
	}
}

func TestConvertMismatch(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	header := "email,phone,name,visits,score,member,since,seen\n"
	tests := []struct {
		name, data string
		want       error
		column     string
		row        int64
	}{
		{"missing column", "email,phone,name,visits,score,member,since\na,+81312345678,n,1,1,true,2024-01-01\n", table.ErrMissingColumn, "seen", 0},
		{"extra column", strings.TrimSuffix(header, "\n") + ",extra\na,+81312345678,n,1,1,true,2024-01-01,2024-01-01,x\n", table.ErrExtraColumn, "extra", 0},
		{"int64", header + "a,+81312345678,n,1,1,true,2024-01-01,2024-01-01\nb,+81312345678,n,many,1,true,2024-01-01,2024-01-01\n", table.ErrTypeMismatch, "visits", 2},
		{"date", header + "a,+81312345678,n,1,1,true,yesterday,2024-01-01\n", table.ErrTypeMismatch, "since", 1},
		{"bool", header + "a,+81312345678,n,1,1,maybe,2024-01-01,2024-01-01\n", table.ErrTypeMismatch, "member", 1},
		{"phone", header + "a,+81312345678,n,1,1,true,2024-01-01,2024-01-01\nb,+81312345678,n,1,1,true,2024-01-01,2024-01-01\nc,call me,n,1,1,true,2024-01-01,2024-01-01\n", table.ErrInvalidValue, "phone", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := write(t, dir, "in.csv", tc.data)
			_, _, err := convert(t, in, sc)
			if !errors.Is(err, tc.want) || !errors.Is(err, table.ErrSchemaMismatch) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			var ce *table.ColumnError
			if !errors.As(err, &ce) || ce.Column != tc.column || ce.Row != tc.row {
				t.Fatalf("got %v, want column %q row %d", err, tc.column, tc.row)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Fatalf("output left behind: %v", entries)
			}
		})
	}
}

func TestInfer(t *testing.T) {
	dir := t.TempDir()
	in := write(t, dir, "in.csv", "id,name,amount,when,ok\n1,蔵,1.5,2024-01-01,true\n2,b,2,2024-02-01,false\n")
	sc, err := Infer(context.Background(), Config{}, in, "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]table.Type{}
	for _, c := range sc.Columns {
		got[c.Name] = c.Type
	}
	wantTypes := map[string]table.Type{"id": table.Int64, "name": table.String, "amount": table.Double, "when": table.Date, "ok": table.Bool}
	if !reflect.DeepEqual(got, wantTypes) {
		t.Fatalf("inferred %v", got)
	}
	if _, _, err := convert(t, in, sc); err != nil {
		t.Fatalf("converting with the inferred schema: %v", err)
	}
	if _, err := Infer(context.Background(), Config{}, write(t, dir, "e.csv", ""), ""); err == nil {
		t.Fatal("inferred a schema from an empty file")
	}
}

// TestConvertRaggedCSV: a CSV row with more or fewer fields than the
// header is an error, never a dropped row or a merged column (DuckDB's
// sniffer used to read such a file as one column, then drop every row).
func TestConvertRaggedCSV(t *testing.T) {
	sc := mustSchema(t, schemaYAML)
	header := "email,phone,name,visits,score,member,since,seen\n"
	row := "a,+81312345678,n,1,1,true,2024-01-01,2024-01-01\n"
	for name, data := range map[string]string{
		"extra field":   header + row + "b,+81312345678,n,1,1,true,2024-01-01,2024-01-01,x\n" + row,
		"missing field": header + row + "b,+81312345678,n,1,1,true,2024-01-01\n" + row,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, res, err := convert(t, write(t, dir, "in.csv", data), sc)
			if !errors.Is(err, table.ErrUnreadable) {
				t.Fatalf("got %v (result %+v), want table.ErrUnreadable", err, res)
			}
			// Without a schema (inferred from the input) too.
			if sc, err := Infer(context.Background(), Config{}, write(t, dir, "again.csv", data), ""); !errors.Is(err, table.ErrUnreadable) {
				t.Fatalf("inferring: got %v (schema %v), want table.ErrUnreadable", err, sc)
			}
		})
	}
}
