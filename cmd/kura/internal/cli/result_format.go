package cli

import (
	"context"
	"database/sql"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" driver

	"github.com/kura-cc/kura/result"
)

// Output formats of kura result open.
const (
	formatTable   = "table"   // aligned columns and the suppression summary (the default on a terminal)
	formatCSV     = "csv"     // RFC 4180, a header row of column names
	formatJSON    = "json"    // the decrypted result exactly as signed (analysis.Result)
	formatParquet = "parquet" // the rows with their DuckDB column types (HUGEINT as DECIMAL(38,0)), through DuckDB
)

// writeResult writes the decrypted result plain in format to w; parquet
// needs a file (path), which is written only when complete.
func writeResult(ctx context.Context, w io.Writer, path, format string, plain []byte) error {
	switch format {
	case formatJSON:
		_, err := w.Write(plain)
		return err
	case formatTable:
		return printResult(w, plain)
	case formatCSV:
		return writeResultCSV(w, plain)
	case formatParquet:
		return writeResultParquet(ctx, path, plain)
	}
	return usagef("--format %q: want table, csv, json or parquet", format)
}

func writeResultCSV(w io.Writer, plain []byte) error {
	r, err := decodeResult(plain)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	head := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		head[i] = c.Name
	}
	cw.Write(head)
	for _, row := range r.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			if rec[i], err = result.Cell(v); err != nil {
				return err
			}
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// duckType matches the DuckDB type names a result's columns may carry, so
// that only those reach the SQL text.
var duckType = regexp.MustCompile(`^[A-Z][A-Z0-9_]*(\([0-9]+(, ?[0-9]+)?\))?(\[\])*$`)

// writeResultParquet writes the result's rows to path as Parquet, each
// column of its DuckDB type, through an in-memory DuckDB: values go in as
// bound parameters, cast to their column's type.
func writeResultParquet(ctx context.Context, path string, plain []byte) error {
	if path == "" {
		return usagef("--format parquet writes a file: give -o FILE")
	}
	r, err := decodeResult(plain)
	if err != nil {
		return err
	}
	if len(r.Columns) == 0 {
		return fmt.Errorf("the result has no columns: nothing to write as Parquet")
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var cols, casts, sel []string
	for _, c := range r.Columns {
		t := strings.ToUpper(c.Type)
		if !duckType.MatchString(t) {
			return fmt.Errorf("column %q: unsupported type %q for Parquet", c.Name, c.Type)
		}
		name := `"` + strings.ReplaceAll(c.Name, `"`, `""`) + `"`
		cols = append(cols, name+" "+t)
		if t == "HUGEINT" || t == "UHUGEINT" {
			// Parquet has no 128-bit integer and DuckDB would write a
			// DOUBLE; DECIMAL(38,0) is exact, and a value too large for it
			// is an error, not a rounded number.
			sel = append(sel, "CAST("+name+" AS DECIMAL(38,0)) AS "+name)
		} else {
			sel = append(sel, name)
		}
		if strings.HasSuffix(t, "[]") {
			casts = append(casts, "CAST(CAST(? AS JSON) AS "+t+")")
		} else {
			casts = append(casts, "CAST(? AS "+t+")")
		}
	}
	for _, q := range []string{"SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false", "CREATE TABLE result (" + strings.Join(cols, ", ") + ")"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
	}
	insert := "INSERT INTO result VALUES (" + strings.Join(casts, ", ") + ")"
	for n, row := range r.Rows {
		if len(row) != len(r.Columns) {
			return fmt.Errorf("row %d has %d values for %d columns", n+1, len(row), len(r.Columns))
		}
		args := make([]any, len(row))
		for i, v := range row {
			if v == nil {
				continue
			}
			if args[i], err = result.Cell(v); err != nil {
				return err
			}
		}
		if _, err := conn.ExecContext(ctx, insert, args...); err != nil {
			return fmt.Errorf("parquet: row %d: %w", n+1, err)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := conn.ExecContext(ctx, "COPY (SELECT "+strings.Join(sel, ", ")+" FROM result) TO '"+strings.ReplaceAll(tmp.Name(), "'", "''")+"' (FORMAT parquet)"); err != nil {
		return fmt.Errorf("parquet: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
