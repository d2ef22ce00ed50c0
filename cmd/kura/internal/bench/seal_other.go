//go:build !linux

package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strings"
)

// duckdbCSVToParquet runs COPY (FROM read_csv(in)) TO Parquet with DuckDB's
// defaults into a temporary file, then copies it into w. (On Linux DuckDB
// writes into a pipe read as it writes, as kura's conversion does there.)
func duckdbCSVToParquet(ctx context.Context, in string, w io.Writer) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	f, err := os.CreateTemp("", "kura-bench-*.parquet")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	if _, err := db.ExecContext(ctx, fmt.Sprintf("COPY (FROM read_csv(%s)) TO %s (FORMAT parquet)", q(in), q(f.Name()))); err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}
