package timelock

import (
	"crypto/sha256"
	"hash"
	"io"
	"sync/atomic"
)

// Sizes of digestWriter's buffers: a few, each holding about two age
// chunks, are enough to keep both goroutines busy.
const (
	digestBufSize = 128 << 10
	digestBufs    = 4
)

// digestWriter writes what is written to it to dst and hashes it with
// SHA-256, on a second goroutine, so that hashing the sealed file (for its
// registration) overlaps encrypting it rather than adding to it. Writes are
// copied into one of a few buffers and handed over in order; Close waits
// for them to reach dst. A digestWriter is for one goroutine.
type digestWriter struct {
	buf    []byte        // being filled; nil when none is held
	full   chan []byte   // to the goroutine, in order
	free   chan []byte   // back from it
	done   chan struct{} // closed when the goroutine has finished
	failed atomic.Bool   // dst failed; err says how
	closed bool

	// Set by the goroutine, read after done.
	err error
	h   hash.Hash
	n   int64
}

func newDigestWriter(dst io.Writer) *digestWriter {
	d := &digestWriter{
		full: make(chan []byte, digestBufs),
		free: make(chan []byte, digestBufs),
		done: make(chan struct{}),
		h:    sha256.New(),
	}
	for range digestBufs {
		d.free <- make([]byte, 0, digestBufSize)
	}
	go d.run(dst)
	return d
}

// run hashes and writes each buffer, in order, and hands it back. After
// dst fails it only hands buffers back.
func (d *digestWriter) run(dst io.Writer) {
	defer close(d.done)
	for b := range d.full {
		if d.err == nil {
			d.h.Write(b)
			n, err := dst.Write(b)
			d.n += int64(n)
			if err == nil && n < len(b) {
				err = io.ErrShortWrite
			}
			if err != nil {
				d.err = err
				d.failed.Store(true)
			}
		}
		d.free <- b[:0]
	}
}

// Write copies p into the pipeline. It fails once dst has failed, with
// dst's error (from Close).
func (d *digestWriter) Write(p []byte) (int, error) {
	if d.closed {
		return 0, io.ErrClosedPipe
	}
	written := 0
	for len(p) > 0 {
		if d.failed.Load() {
			return written, d.Close()
		}
		if d.buf == nil {
			d.buf = <-d.free
		}
		n := copy(d.buf[len(d.buf):cap(d.buf)], p)
		d.buf = d.buf[:len(d.buf)+n]
		p, written = p[n:], written+n
		if len(d.buf) == cap(d.buf) {
			d.full <- d.buf
			d.buf = nil
		}
	}
	return written, nil
}

// Close flushes what is buffered, waits until everything written has
// reached dst and returns dst's first error. It may be called more than
// once.
func (d *digestWriter) Close() error {
	if !d.closed {
		d.closed = true
		if len(d.buf) > 0 {
			d.full <- d.buf
		}
		d.buf = nil
		close(d.full)
		<-d.done
	}
	return d.err
}

// Sum returns the SHA-256 of everything that reached dst and its length;
// only after Close, and meaningful only if Close returned nil.
func (d *digestWriter) Sum() ([]byte, int64) {
	return d.h.Sum(nil), d.n
}
