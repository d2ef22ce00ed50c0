//go:build !linux

package convert

import (
	"context"
	"io"
	"os"
)

// copyTo runs COPY (query) TO a temporary file as zstd-compressed Parquet,
// then copies the file into w. (On Linux DuckDB writes into a pipe that w
// is fed from as it writes.)
func (s *session) copyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
	f, err := os.CreateTemp(s.spill, "out-*.parquet")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	rows, err := s.copyFile(ctx, query, f.Name())
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, f); err != nil {
		return 0, err
	}
	return rows, nil
}
