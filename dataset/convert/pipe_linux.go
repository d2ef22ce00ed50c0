package convert

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
)

// copyTo runs COPY (query) TO a pipe as zstd-compressed Parquet and copies
// what DuckDB writes into w as it writes it, so that nothing is staged on
// disk and memory stays bounded by DuckDB's row groups and the pipe. DuckDB
// opens the pipe's write end as /dev/fd/N (a file it writes in order,
// never seeking). When w fails, the rest is drained and discarded so that
// DuckDB never blocks on a full pipe; the caller cancels ctx to stop it
// early. The read end is closed only after COPY returned, so DuckDB never
// writes to a pipe without a reader (which would raise SIGPIPE on one of
// its threads).
func (s *session) copyTo(ctx context.Context, query string, w io.Writer) (int64, error) {
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
	res, err := s.conn.ExecContext(ctx, fmt.Sprintf("COPY (%s) TO '/dev/fd/%d' (FORMAT parquet, COMPRESSION zstd)", query, p[1]))
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
