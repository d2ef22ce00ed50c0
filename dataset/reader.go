package dataset

import (
	"fmt"
	"io"
)

// Reader gives random access to the plaintext of a sealed dataset. Every
// chunk it returns has been authenticated. It is safe for concurrent use.
type Reader struct {
	r      io.ReaderAt
	h      *Header
	c      *fileCipher
	chunks int64 // number of chunks
	size   int64 // plaintext size
}

// NewReader reads and verifies the header of the sealed dataset r, whose
// total size is size bytes.
func NewReader(r io.ReaderAt, size int64, key Key) (*Reader, error) {
	h, err := ReadHeader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, err
	}
	if err := h.verify(key); err != nil {
		return nil, err
	}
	body := size - int64(h.Len())
	unit := int64(h.ChunkSize + TagSize)
	rd := &Reader{r: r, h: h, c: newFileCipher(key, h)}
	if h.Size != UnknownSize {
		switch want := h.SealedSize(); {
		case size < want:
			return nil, fmt.Errorf("%w: %d bytes, header says %d", ErrTruncated, size, want)
		case size > want:
			return nil, fmt.Errorf("%w: %d bytes after the final chunk", ErrTampered, size-want)
		}
		rd.chunks, rd.size = h.NumChunks(), h.Size
		return rd, nil
	}
	if body < TagSize {
		return nil, fmt.Errorf("%w: no chunk after the header", ErrTruncated)
	}
	rd.chunks = (body + unit - 1) / unit
	rd.size = body - TagSize*rd.chunks
	if last := body - (rd.chunks-1)*unit; last < TagSize {
		return nil, fmt.Errorf("%w: final chunk has %d bytes, less than a tag", ErrTruncated, last)
	}
	return rd, nil
}

// Header returns the verified header.
func (r *Reader) Header() *Header { return r.h }

// NumChunks returns the number of chunks.
func (r *Reader) NumChunks() int64 { return r.chunks }

// Size returns the plaintext size.
func (r *Reader) Size() int64 { return r.size }

// Chunk reads, authenticates and returns chunk i, appending its plaintext
// to dst[:0] (pass a buffer of ChunkSize+TagSize bytes to avoid allocating).
func (r *Reader) Chunk(i int64, dst []byte) ([]byte, error) {
	if i < 0 || i >= r.chunks {
		return nil, fmt.Errorf("chunk %d out of range [0, %d)", i, r.chunks)
	}
	unit := int64(r.h.ChunkSize + TagSize)
	off := int64(r.h.Len()) + i*unit
	n := unit
	if i == r.chunks-1 {
		n = int64(r.h.Len()) + r.size + TagSize*r.chunks - off
	}
	if int64(cap(dst)) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if _, err := r.r.ReadAt(dst, off); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%w: chunk %d", ErrTruncated, i)
		}
		return nil, err
	}
	return r.c.openChunk(dst, uint64(i), i == r.chunks-1)
}

// ReadAt implements io.ReaderAt over the plaintext, authenticating each
// chunk it touches.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("negative offset")
	}
	cs := int64(r.h.ChunkSize)
	var buf []byte
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.size {
			return n, io.EOF
		}
		pt, err := r.Chunk(pos/cs, buf)
		if err != nil {
			return n, err
		}
		buf = pt[:cap(pt)]
		n += copy(p[n:], pt[pos%cs:])
	}
	return n, nil
}
