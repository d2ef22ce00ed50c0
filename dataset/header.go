package dataset

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// Magic starts every sealed dataset.
const Magic = "\x89KURADS\n"

// UnknownSize is Header.Size when the plaintext size was not known when
// sealing started.
const UnknownSize = -1

// Header is the authenticated header of a sealed dataset
// (docs/spec/dataset.md §2). Seal fills in ChunkSize (when zero), Size, Salt
// and KeyID.
type Header struct {
	// DatasetID names the dataset: 1 to 1024 bytes of UTF-8.
	DatasetID string `json:"dataset_id"`
	// Format is the plaintext format, "parquet" in kura: 1 to 32 bytes.
	Format string `json:"format"`
	// Schema is the dataset's schema as JSON, or empty.
	Schema json.RawMessage `json:"schema,omitempty"`
	// ChunkSize is the plaintext bytes per chunk; zero means DefaultChunkSize.
	ChunkSize int `json:"chunk_size"`
	// Size is the plaintext size in bytes, or UnknownSize.
	Size int64 `json:"size"`
	// Salt is the per-file random salt.
	Salt [SaltSize]byte `json:"-"`
	// KeyID is the id of the data key the file is sealed under.
	KeyID KeyID `json:"key_id"`

	mac [32]byte // HMAC-SHA256 of the preceding header bytes
	raw []byte   // encoded header, MAC included
}

// fixedHeaderSize is the header size up to and including the key id.
const fixedHeaderSize = 8 + 2 + 4 + 4 + 8 + SaltSize + 32

// Bytes returns the encoded header, as read or as written by Seal.
func (h *Header) Bytes() []byte { return bytes.Clone(h.raw) }

// Len returns the size of the encoded header in bytes.
func (h *Header) Len() int { return len(h.raw) }

// NumChunks returns the number of chunks of a file with this header, or -1
// when the plaintext size is unknown.
func (h *Header) NumChunks() int64 {
	if h.Size == UnknownSize {
		return -1
	}
	return numChunks(h.Size, h.ChunkSize)
}

func numChunks(size int64, cs int) int64 {
	if size == 0 {
		return 1
	}
	return (size + int64(cs) - 1) / int64(cs)
}

// SealedSize returns the size of the whole sealed file, or -1 when the
// plaintext size is unknown.
func (h *Header) SealedSize() int64 {
	if h.Size == UnknownSize {
		return -1
	}
	return int64(len(h.raw)) + h.Size + TagSize*h.NumChunks()
}

// check validates the fields a writer controls.
func (h *Header) check() error {
	switch {
	case len(h.DatasetID) < 1 || len(h.DatasetID) > 1024 || !utf8.ValidString(h.DatasetID):
		return fmt.Errorf("%w: dataset id must be 1 to 1024 bytes of UTF-8", ErrMalformedHeader)
	case len(h.Format) < 1 || len(h.Format) > 32 || !utf8.ValidString(h.Format):
		return fmt.Errorf("%w: format must be 1 to 32 bytes of UTF-8", ErrMalformedHeader)
	case len(h.Schema) > 0 && !json.Valid(h.Schema):
		return fmt.Errorf("%w: schema is not valid JSON", ErrMalformedHeader)
	case h.ChunkSize < MinChunkSize || h.ChunkSize > MaxChunkSize:
		return fmt.Errorf("%w: chunk size %d outside [%d, %d]", ErrMalformedHeader, h.ChunkSize, MinChunkSize, MaxChunkSize)
	case h.Size < UnknownSize:
		return fmt.Errorf("%w: negative size", ErrMalformedHeader)
	}
	if n := fixedHeaderSize + 1 + len(h.Format) + 2 + len(h.DatasetID) + 4 + len(h.Schema) + 32; n > MaxHeaderSize {
		return fmt.Errorf("%w: header is %d bytes, more than %d", ErrMalformedHeader, n, MaxHeaderSize)
	}
	return nil
}

// encode returns the header bytes before the MAC.
func (h *Header) encode() []byte {
	n := fixedHeaderSize + 1 + len(h.Format) + 2 + len(h.DatasetID) + 4 + len(h.Schema) + 32
	b := make([]byte, 0, n)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, uint32(h.ChunkSize))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Size)) // -1 encodes as all ones
	b = append(b, h.Salt[:]...)
	b = append(b, h.KeyID[:]...)
	b = append(b, byte(len(h.Format)))
	b = append(b, h.Format...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.DatasetID)))
	b = append(b, h.DatasetID...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.Schema)))
	b = append(b, h.Schema...)
	return b
}

// finish computes the MAC under the data key and sets raw.
func (h *Header) finish(key Key) {
	b := h.encode()
	m := hmac.New(sha256.New, derive(key.b[:], h.Salt[:], infoHeaderMAC))
	m.Write(b)
	m.Sum(h.mac[:0])
	h.raw = append(b, h.mac[:]...)
}

// verify checks the key id and the header MAC.
func (h *Header) verify(key Key) error {
	if id := key.ID(); !hmac.Equal(id[:], h.KeyID[:]) {
		return fmt.Errorf("%w: file is sealed under key id %s, this key's id is %s", ErrWrongKey, h.KeyID, id)
	}
	m := hmac.New(sha256.New, derive(key.b[:], h.Salt[:], infoHeaderMAC))
	m.Write(h.raw[:len(h.raw)-32])
	if !hmac.Equal(m.Sum(nil), h.mac[:]) {
		return fmt.Errorf("%w: header MAC does not verify", ErrTampered)
	}
	return nil
}

// ParseHeader parses the header at the start of data. It checks the
// structure only; the MAC is checked by Open with the key.
func ParseHeader(data []byte) (*Header, error) {
	return ReadHeader(bytes.NewReader(data))
}

// ReadHeader reads exactly one header from r, leaving r at the first chunk.
// It checks the structure only; the MAC is checked by Open with the key.
func ReadHeader(r io.Reader) (*Header, error) {
	var pre [14]byte
	if n, err := io.ReadFull(r, pre[:]); err != nil {
		if n < len(Magic) && !bytes.HasPrefix([]byte(Magic), pre[:n]) || n >= len(Magic) && string(pre[:len(Magic)]) != Magic {
			return nil, fmt.Errorf("%w: not a kura sealed dataset", ErrMalformedHeader)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: inside the header", ErrTruncated)
		}
		return nil, err
	}
	if string(pre[:8]) != Magic {
		return nil, fmt.Errorf("%w: not a kura sealed dataset", ErrMalformedHeader)
	}
	if v := binary.BigEndian.Uint16(pre[8:]); v != Version {
		return nil, fmt.Errorf("%w: version %d (this kura reads version %d)", ErrUnsupportedVersion, v, Version)
	}
	n := binary.BigEndian.Uint32(pre[10:])
	if n < fixedHeaderSize+1+1+2+1+4+32 || n > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d", ErrMalformedHeader, n)
	}
	raw := make([]byte, n)
	copy(raw, pre[:])
	if _, err := io.ReadFull(r, raw[len(pre):]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: inside the header", ErrTruncated)
		}
		return nil, err
	}
	h := &Header{raw: raw}
	p := raw[14:]
	h.ChunkSize = int(binary.BigEndian.Uint32(p))
	h.Size = int64(binary.BigEndian.Uint64(p[4:]))
	if uint64(h.Size) == ^uint64(0) {
		h.Size = UnknownSize
	} else if h.Size < 0 {
		return nil, fmt.Errorf("%w: size %d", ErrMalformedHeader, uint64(h.Size))
	}
	copy(h.Salt[:], p[12:])
	copy(h.KeyID[:], p[12+SaltSize:])
	p = p[12+SaltSize+32:]
	// Variable fields; the fixed minimum length above guarantees the first
	// length byte is present, each step checks the rest.
	take := func(l int) ([]byte, bool) {
		if l > len(p)-32 {
			return nil, false
		}
		v := p[:l]
		p = p[l:]
		return v, true
	}
	lenOf := func(size int) (int, bool) {
		v, ok := take(size)
		if !ok {
			return 0, false
		}
		switch size {
		case 1:
			return int(v[0]), true
		case 2:
			return int(binary.BigEndian.Uint16(v)), true
		}
		return int(binary.BigEndian.Uint32(v)), true
	}
	var format, id, schema []byte
	ok := true
	for _, f := range []struct {
		size int
		dst  *[]byte
	}{{1, &format}, {2, &id}, {4, &schema}} {
		var l int
		if l, ok = lenOf(f.size); !ok {
			break
		}
		if *f.dst, ok = take(l); !ok {
			break
		}
	}
	if !ok || len(p) != 32 {
		return nil, fmt.Errorf("%w: field lengths do not add up to the header length", ErrMalformedHeader)
	}
	copy(h.mac[:], p)
	h.Format, h.DatasetID = string(format), string(id)
	if len(schema) > 0 {
		h.Schema = json.RawMessage(schema)
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	return h, nil
}
