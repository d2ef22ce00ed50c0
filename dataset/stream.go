package dataset

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// Options tune Seal and Open. The zero value is ready to use.
type Options struct {
	// Workers is the number of chunks sealed or opened in parallel;
	// zero means runtime.GOMAXPROCS(0).
	Workers int
	// Progress, when set, is called with the plaintext bytes done so far,
	// from one goroutine, in order.
	Progress func(done int64)
	// Rand is the source of the salt; nil means crypto/rand.
	Rand io.Reader
}

func (o *Options) workers() int {
	if o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// fileCipher is the per-file state: the chunk AEAD and the associated data.
type fileCipher struct {
	aead cipher.AEAD
	aad  [sha256.Size]byte
	cs   int
}

func newFileCipher(key Key, h *Header) *fileCipher {
	block, err := aes.NewCipher(derive(key.b[:], h.Salt[:], infoChunkKey))
	if err != nil {
		panic(err) // the key is always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &fileCipher{aead: aead, aad: sha256.Sum256(h.raw), cs: h.ChunkSize}
}

// nonce returns the STREAM nonce: an 11-byte big-endian counter and the
// last-chunk flag.
func nonce(i uint64, final bool) [12]byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[3:11], i)
	if final {
		n[11] = 1
	}
	return n
}

// sealChunk seals buf[:n] in place and returns the ciphertext.
func (c *fileCipher) sealChunk(buf []byte, i uint64, final bool) []byte {
	nc := nonce(i, final)
	return c.aead.Seal(buf[:0], nc[:], buf, c.aad[:])
}

// openChunk opens ct in place. On failure it classifies the error: a final
// chunk that authenticates as a non-final one means the file was truncated.
// ct is left unspecified on failure.
func (c *fileCipher) openChunk(ct []byte, i uint64, final bool) ([]byte, error) {
	if len(ct) < TagSize {
		return nil, fmt.Errorf("%w: chunk %d has %d bytes, less than a tag", ErrTruncated, i, len(ct))
	}
	if final && len(ct) > c.cs+TagSize {
		return nil, fmt.Errorf("%w: chunk %d is longer than a chunk", ErrTampered, i)
	}
	nc := nonce(i, final)
	var spare []byte
	if final {
		spare = append([]byte(nil), ct...) // to classify a failure; once per file
	}
	pt, err := c.aead.Open(ct[:0], nc[:], ct, c.aad[:])
	if err == nil {
		if final && i > 0 && len(pt) == 0 {
			return nil, fmt.Errorf("%w: empty final chunk %d", ErrTampered, i)
		}
		return pt, nil
	}
	if final && len(spare) == c.cs+TagSize {
		nn := nonce(i, false)
		if _, err := c.aead.Open(spare[:0], nn[:], spare, c.aad[:]); err == nil {
			clear(spare)
			return nil, fmt.Errorf("%w: stream ends after chunk %d, which is not the final chunk", ErrTruncated, i)
		}
	}
	return nil, fmt.Errorf("%w: chunk %d does not authenticate", ErrTampered, i)
}

// Seal reads the plaintext from src and writes the sealed dataset to dst.
// h supplies DatasetID, Format, Schema and ChunkSize; Seal sets the rest and
// returns nothing else: read the written header with ReadHeader.
func Seal(ctx context.Context, dst io.Writer, src io.Reader, key Key, h Header, opts Options) error {
	_, err := seal(ctx, dst, src, key, h, UnknownSize, opts)
	return err
}

func seal(ctx context.Context, dst io.Writer, src io.Reader, key Key, h Header, size int64, opts Options) (*Header, error) {
	if h.ChunkSize == 0 {
		h.ChunkSize = DefaultChunkSize
	}
	h.Size = size
	h.KeyID = key.ID()
	rnd := opts.Rand
	if rnd == nil {
		rnd = randReader{}
	}
	if _, err := io.ReadFull(rnd, h.Salt[:]); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	h.finish(key)
	if _, err := dst.Write(h.raw); err != nil {
		return nil, err
	}
	c := newFileCipher(key, &h)
	var total int64
	err := pipeline(ctx, src, h.ChunkSize, h.ChunkSize+TagSize, opts.workers(),
		func(j *job) {
			j.out = c.sealChunk(j.buf[:j.n], j.idx, j.final)
		},
		func(j *job) error {
			total += int64(j.n)
			if size != UnknownSize && total > size {
				return fmt.Errorf("%w: more than the %d bytes announced", ErrSourceChanged, size)
			}
			if _, err := dst.Write(j.out); err != nil {
				return err
			}
			if opts.Progress != nil {
				opts.Progress(total)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	if size != UnknownSize && total != size {
		return nil, fmt.Errorf("%w: read %d bytes, announced %d", ErrSourceChanged, total, size)
	}
	return &h, nil
}

// Open reads a sealed dataset from src and writes the plaintext to dst. Each
// chunk is written only after it authenticated; on error dst may hold a
// prefix of the plaintext (use OpenFile for all or nothing).
func Open(ctx context.Context, dst io.Writer, src io.Reader, key Key, opts Options) (*Header, error) {
	h, err := ReadHeader(src)
	if err != nil {
		return nil, err
	}
	if err := h.verify(key); err != nil {
		return nil, err
	}
	c := newFileCipher(key, h)
	var total int64
	var chunks int64
	want := h.NumChunks()
	err = pipeline(ctx, src, h.ChunkSize+TagSize, h.ChunkSize+TagSize, opts.workers(),
		func(j *job) {
			j.out, j.err = c.openChunk(j.buf[:j.n], j.idx, j.final)
		},
		func(j *job) error {
			if want >= 0 && int64(j.idx) >= want {
				return fmt.Errorf("%w: data after the final chunk", ErrTampered)
			}
			if j.err != nil {
				if want >= 0 && j.final && int64(j.idx) < want-1 {
					return fmt.Errorf("%w: %d of %d chunks present", ErrTruncated, j.idx+1, want)
				}
				if want >= 0 && j.final && j.n < TagSize+int(h.Size-int64(j.idx)*int64(h.ChunkSize)) {
					return fmt.Errorf("%w: final chunk %d is %d bytes short", ErrTruncated, j.idx, TagSize+int(h.Size-int64(j.idx)*int64(h.ChunkSize))-j.n)
				}
				return j.err
			}
			if want >= 0 && j.final && int64(j.idx) != want-1 {
				return fmt.Errorf("%w: %d chunks, header says %d", ErrTampered, j.idx+1, want)
			}
			total += int64(len(j.out))
			chunks++
			if _, err := dst.Write(j.out); err != nil {
				return err
			}
			if opts.Progress != nil {
				opts.Progress(total)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	if h.Size != UnknownSize && total != h.Size {
		return nil, fmt.Errorf("%w: %d plaintext bytes, header says %d", ErrTampered, total, h.Size)
	}
	return h, nil
}

// job is one chunk in flight.
type job struct {
	idx   uint64
	buf   []byte // read buffer
	n     int    // valid bytes in buf
	final bool
	out   []byte // result, aliasing buf
	err   error
	done  chan struct{}
}

// pipeline reads src in units of unit bytes, processes up to workers units
// in parallel and hands them to write in order. A short read marks the final
// unit; when a full unit is followed by end of input, that unit is final.
// At most 2*workers+2 units are in memory at once.
func pipeline(ctx context.Context, src io.Reader, unit, bufSize, workers int, process func(*job), write func(*job) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inflight := 2*workers + 2
	free := make(chan []byte, inflight)
	for range inflight {
		free <- nil
	}
	work := make(chan *job, inflight)
	order := make(chan *job, inflight)

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range work {
				process(j)
				close(j.done)
			}
		})
	}

	readErr := make(chan error, 1)
	go func() {
		defer close(work)
		defer close(order)
		readErr <- produce(ctx, src, unit, bufSize, free, work, order)
	}()

	var err error
	for j := range order {
		select {
		case <-j.done:
		case <-ctx.Done():
		}
		if err == nil {
			select {
			case <-j.done:
				err = write(j)
			default:
				err = context.Cause(ctx)
			}
			if err != nil {
				cancel(err)
			}
		}
		if err != nil {
			<-j.done // workers finish every job they were given
		}
		free <- j.buf
	}
	rerr := <-readErr
	wg.Wait()
	for len(free) > 0 {
		clear(<-free) // plaintext does not outlive the call in our buffers
	}
	if err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	return context.Cause(ctx)
}

func produce(ctx context.Context, src io.Reader, unit, bufSize int, free chan []byte, work, order chan *job) error {
	var prev *job
	send := func(j *job) error {
		select {
		case order <- j:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		work <- j // never blocks for long: work has room for every job in order
		return nil
	}
	for idx := uint64(0); ; idx++ {
		var buf []byte
		select {
		case buf = <-free:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if buf == nil {
			buf = make([]byte, bufSize)
		}
		n, err := io.ReadFull(src, buf[:unit])
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			free <- buf
			return err
		}
		if eof && n == 0 && prev != nil {
			free <- buf
			prev.final = true
			return send(prev)
		}
		if prev != nil {
			if err := send(prev); err != nil {
				free <- buf
				return err
			}
		}
		cur := &job{idx: idx, buf: buf, n: n, done: make(chan struct{})}
		if eof {
			cur.final = true
			return send(cur)
		}
		prev = cur
	}
}
