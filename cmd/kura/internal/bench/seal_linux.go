package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// duckdbCSVToParquet runs COPY (FROM read_csv(in)) TO Parquet with DuckDB's
// defaults into a pipe and copies what DuckDB writes into w as it writes
// it, as package dataset/convert feeds kura's sealer.
func duckdbCSVToParquet(ctx context.Context, in string, w io.Writer) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return err
	}
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return err
	}
	r := os.NewFile(uintptr(p[0]), "parquet-pipe")
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(w, r)
		if err != nil {
			io.Copy(io.Discard, r)
		}
		copied <- err
	}()
	_, err = db.ExecContext(ctx, fmt.Sprintf("COPY (FROM read_csv('%s')) TO '/dev/fd/%d' (FORMAT parquet)", strings.ReplaceAll(in, "'", "''"), p[1]))
	syscall.Close(p[1])
	if err != nil {
		r.Close()
		<-copied
		return err
	}
	werr := <-copied
	r.Close()
	return werr
}
