// Package blobio holds the reader wrappers that blob's backends share: one
// that enforces a Put's declared size, one that stops reading once a
// context is done.
package blobio

import (
	"context"
	"fmt"
	"io"

	"github.com/kura-cc/kura/blob"
)

// Exact returns a reader that yields the bytes of r and fails with an error
// wrapping blob.ErrSizeMismatch if r ends before size bytes or holds more
// than size bytes. With size -1 it returns r unchanged.
//
// The check for surplus bytes happens in the same Read call that delivers
// the last expected byte, so a consumer that stops reading after exactly
// size bytes (as an HTTP client sending a Content-Length body does) still
// sees the error.
func Exact(r io.Reader, size int64) io.Reader {
	if size < 0 {
		return r
	}
	return &exactReader{r: r, left: size}
}

type exactReader struct {
	r    io.Reader
	left int64
	err  error // sticky
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		e.err = e.probe()
		return 0, e.err
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("%w: reader ended %d bytes short", blob.ErrSizeMismatch, e.left)
	case err != nil:
		e.err = err
	case e.left == 0:
		e.err = e.probe()
	}
	return n, e.err
}

// probe reads one byte past the expected end: io.EOF when there is none,
// a size-mismatch error when there is one.
func (e *exactReader) probe() error {
	var b [1]byte
	for range 100 {
		n, err := e.r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("%w: reader holds more bytes than declared", blob.ErrSizeMismatch)
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// WithContext returns a reader that fails with ctx's error once ctx is done,
// checked before every Read of r.
func WithContext(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Recorder is a reader that remembers the first error other than io.EOF
// that R returned, so a caller can tell a source failure from a failure of
// whatever consumed the reader (a client library may not wrap it).
type Recorder struct {
	R   io.Reader
	Err error
}

// Read reads from the underlying reader and records its first error.
func (r *Recorder) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	if err != nil && err != io.EOF && r.Err == nil {
		r.Err = err
	}
	return n, err
}
