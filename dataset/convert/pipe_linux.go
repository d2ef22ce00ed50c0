package convert

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
)

// CopyParquet runs COPY (query) TO Parquet on db, with DuckDB's COPY
// options opts after FORMAT parquet ("" for its defaults), and copies what
// DuckDB writes into w as it writes it: into a pipe, so that nothing is
// staged on disk and memory stays bounded by DuckDB's row groups and the
// pipe (tmpDir is used only where there are no pipes to write to). DuckDB
// opens the pipe's write end as /dev/fd/N, a file it writes in order,
// never seeking. When w fails, the rest is drained and discarded so that
// DuckDB never blocks on a full pipe; the caller cancels ctx to stop it
// early. The read end is closed only after COPY returned, so DuckDB never
// writes to a pipe without a reader (which would raise SIGPIPE on one of
// its threads). It returns the rows written.
func CopyParquet(ctx context.Context, db Execer, query, opts string, w io.Writer, tmpDir string) (int64, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return 0, err
	}
	// The read end is polled, so closing it below ends a pending read.
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return 0, err
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
	res, err := db.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO '/dev/fd/%d' (%s)", query, p[1], copyOptions(opts)))
	syscall.Close(p[1])
	if err != nil {
		r.Close()
		<-copied
		return 0, err
	}
	werr := <-copied
	r.Close()
	if werr != nil {
		return 0, werr
	}
	return res.RowsAffected()
}
