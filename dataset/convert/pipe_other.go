//go:build !linux

package convert

import (
	"context"
	"fmt"
	"io"
	"os"
)

// CopyParquet runs COPY (query) TO Parquet on db, with DuckDB's COPY
// options opts after FORMAT parquet ("" for its defaults), into a
// temporary file in tmpDir ("" for os.TempDir()), then copies the file into
// w. (On Linux DuckDB writes into a pipe that w is fed from as it writes.)
// It returns the rows written.
func CopyParquet(ctx context.Context, db Execer, query, opts string, w io.Writer, tmpDir string) (int64, error) {
	f, err := os.CreateTemp(tmpDir, "out-*.parquet")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// DuckDB writes the file in place (by default it writes beside an
	// existing file, then renames).
	res, err := db.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO %s (%s, USE_TMP_FILE false)", query, quote(f.Name()), copyOptions(opts)))
	if err != nil {
		return 0, err
	}
	rows, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, f); err != nil {
		return 0, err
	}
	return rows, nil
}
