package dataset

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// SealFile seals the file at srcPath into dstPath. The sealed file appears
// at dstPath only when sealing succeeded; the header records the plaintext
// size, so any truncation of the sealed file is reported as ErrTruncated.
func SealFile(ctx context.Context, dstPath, srcPath string, key Key, h Header, opts Options) (*Header, error) {
	src, err := os.Open(srcPath)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", srcPath)
	}
	var out *Header
	err = writeAtomic(dstPath, 0o644, func(f *os.File) error {
		out, err = seal(ctx, f, src, key, h, st.Size(), opts)
		return err
	})
	return out, err
}

// OpenFile opens the sealed dataset at srcPath into dstPath (mode 0600). The
// plaintext is written to a temporary file in dstPath's directory that is
// renamed to dstPath only after the final chunk authenticated; on any error
// no output file remains.
func OpenFile(ctx context.Context, dstPath, srcPath string, key Key, opts Options) (*Header, error) {
	src, err := os.Open(srcPath)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	// With several workers, a file whose header records the plaintext size
	// is opened with every worker reading its own chunks, so no single
	// reader copy bounds the rate. One worker, and streamed files (where
	// Open tells truncation at a chunk boundary from tampering), go through
	// Open, which overlaps reading with decryption.
	var h *Header
	err = writeAtomic(dstPath, 0o600, func(f *os.File) error {
		h, err = OpenAt(ctx, f, src, st.Size(), key, opts)
		return err
	})
	return h, err
}

// OpenAt opens the sealed dataset in src (size bytes) into dst, for callers
// that keep the plaintext somewhere other than a named file, such as a
// clean-room worker writing into memory. Unlike OpenFile nothing removes
// dst's partial plaintext on error: the caller must discard dst then.
func OpenAt(ctx context.Context, dst io.Writer, src io.ReaderAt, size int64, key Key, opts Options) (*Header, error) {
	if opts.workers() > 1 {
		return openAt(ctx, dst, src, size, key, opts)
	}
	return Open(ctx, dst, io.NewSectionReader(src, 0, size), key, opts)
}

// openAt opens a sealed file with workers reading and authenticating
// chunks in parallel, writing plaintext to dst in order. A streamed file's
// chunks are counted from its length, as Open finds them (NewReader).
func openAt(ctx context.Context, dst io.Writer, src io.ReaderAt, size int64, key Key, opts Options) (*Header, error) {
	r, err := NewReader(src, size, key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := opts.workers()
	inflight := 2*workers + 2
	unit := r.h.ChunkSize + TagSize
	free := make(chan []byte, inflight)
	for range inflight {
		free <- make([]byte, unit)
	}
	type chunk struct {
		idx  int64
		out  []byte
		buf  []byte
		err  error
		done chan struct{}
	}
	order := make(chan *chunk, inflight)
	jobs := make(chan *chunk, inflight)
	go func() {
		defer close(order)
		defer close(jobs)
		for i := int64(0); i < r.NumChunks() && ctx.Err() == nil; i++ {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			c := &chunk{idx: i, buf: buf, done: make(chan struct{})}
			order <- c
			jobs <- c
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range jobs {
				c.out, c.err = r.Chunk(c.idx, c.buf)
				close(c.done)
			}
		})
	}
	var total int64
	for c := range order {
		<-c.done
		if err == nil {
			err = c.err
			if err == nil {
				_, err = dst.Write(c.out)
				total += int64(len(c.out))
				if opts.Progress != nil {
					opts.Progress(total)
				}
			}
			if err == nil {
				err = ctx.Err()
			}
			if err != nil {
				cancel()
			}
		}
		clear(c.buf)
		free <- c.buf
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return r.h, nil
}

// writeAtomic writes a temporary file next to path with fill and renames it
// to path only when fill, sync and close succeeded.
func writeAtomic(path string, mode os.FileMode, fill func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
