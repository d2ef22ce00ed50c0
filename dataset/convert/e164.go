package convert

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// isE164 reports whether b matches e164Pattern in full: '+', a digit
// other than 0, then 6 to 14 more digits. It tests the digits eight bytes
// at a time, in two overlapping words.
func isE164(b []byte) bool {
	n := len(b)
	if n < 8 || n > 16 || b[0] != '+' || b[1] == '0' {
		return false
	}
	last := binary.LittleEndian.Uint64(b[n-8:])
	if n == 8 {
		return digits(last&^0xff | '0') // the '+' as a digit
	}
	return digits(last) && digits(binary.LittleEndian.Uint64(b[1:9]))
}

// digits reports whether each byte of w is an ASCII digit: its high
// nibble is 3 and adding 6 leaves it 3 (no byte carries, as each is at
// most 0x3f).
func digits(w uint64) bool {
	const high, three, six = 0xf0f0f0f0f0f0f0f0, 0x3030303030303030, 0x0606060606060606
	return w&high == three && (w+six)&high == three
}

// A columnChunk is where one column chunk of a Parquet file lies, as the
// footer says (DuckDB's parquet_metadata reads it).
type columnChunk struct {
	offset, size int64  // the first page's offset; the bytes of all pages, headers included
	codec        string // the footer's compression name
	optional     bool   // the column may hold nulls: data pages carry definition levels
}

// parquetE164 reports whether every value in the PLAIN-encoded and
// dictionary pages of the column chunks of the Parquet file at path is in
// E.164 form (isE164), reading the chunks in parallel on every processor.
// It is conformsValues' check of phone columns, in Go because DuckDB's
// regular expression costs several times decoding the column.
//
// It reads the pages itself, not their definition levels: a page's
// values are the length-prefixed byte strings after its levels, and every
// one found there is checked, so the values a reader takes from the page
// are among them. The work is linear in the chunks' bytes, and every size
// a page header gives is checked against the chunk's. ok is false, with a
// nil error, when a value is not in E.164 form or a page is not one it
// reads (an unknown codec, another value encoding, a header that does not
// add up): the caller then converts the file, which DuckDB reads, and
// normalises or refuses it. Data pages that hold dictionary indexes need
// no check, as every entry of their chunk's dictionary is checked.
func parquetE164(ctx context.Context, path string, chunks []columnChunk) (ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, nil
	}
	for _, c := range chunks {
		if c.offset < 0 || c.size < 0 || c.offset > st.Size()-c.size {
			return false, nil
		}
	}
	var next atomic.Int64
	var bad atomic.Bool
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(chunks)) {
		wg.Go(func() {
			var pr pageReader
			defer pr.close()
			for !bad.Load() && ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(chunks)) {
					return
				}
				if !pr.chunkE164(f, chunks[i]) {
					bad.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return !bad.Load(), nil
}

// Parquet's page types, encodings and level encodings (parquet.thrift).
const (
	pageData       = 0
	pageIndex      = 1
	pageDictionary = 2
	pageDataV2     = 3

	encPlain           = 0
	encPlainDictionary = 2
	encRLE             = 3
	encBitPacked       = 4
	encRLEDictionary   = 8
)

// maxPage bounds one page's decompressed size. Writers' pages are about
// 1 MiB; a larger one sends the file to conversion.
const maxPage = 64 << 20

// pageReader reads the pages of column chunks, reusing its buffers and
// decoders from one chunk to the next.
type pageReader struct {
	br         *bufio.Reader
	raw, plain []byte
	zstd       *zstd.Decoder
}

func (pr *pageReader) close() {
	if pr.zstd != nil {
		pr.zstd.Close()
	}
}

// chunkE164 reports whether every page of the chunk is one it reads and
// every value it holds is in E.164 form.
func (pr *pageReader) chunkE164(f io.ReaderAt, c columnChunk) bool {
	sr := io.NewSectionReader(f, c.offset, c.size)
	if pr.br == nil {
		pr.br = bufio.NewReaderSize(sr, 64<<10)
	} else {
		pr.br.Reset(sr)
	}
	left := c.size
	dict := false // a dictionary page was read
	for left > 0 {
		t := thriftReader{r: pr.br, left: min(left, 1<<20)}
		h, err := readPageHeader(&t)
		if err != nil {
			return false
		}
		left -= t.read()
		if h.compressed < 0 || int64(h.compressed) > left || h.uncompressed < 0 || h.uncompressed > maxPage {
			return false
		}
		left -= int64(h.compressed)
		if cap(pr.raw) < int(h.compressed) {
			pr.raw = make([]byte, h.compressed)
		}
		raw := pr.raw[:h.compressed]
		if _, err := io.ReadFull(pr.br, raw); err != nil {
			return false
		}
		if !pr.pageE164(c, h, raw, dict) {
			return false
		}
		dict = dict || h.typ == pageDictionary
	}
	return true
}

// pageE164 reports whether the page's values, if it holds values rather
// than dictionary indexes, are in E.164 form; a page of indexes passes
// only after a dictionary page (dict).
func (pr *pageReader) pageE164(c columnChunk, h pageHeader, raw []byte, dict bool) bool {
	switch h.typ {
	case pageIndex:
		return true
	case pageDictionary:
		if h.encoding != encPlain && h.encoding != encPlainDictionary {
			return false
		}
		b, ok := pr.decompress(c.codec, raw, int(h.uncompressed))
		return ok && plainE164(b)
	case pageData:
		if h.encoding == encPlainDictionary || h.encoding == encRLEDictionary {
			return dict
		}
		if h.encoding != encPlain {
			return false
		}
		b, ok := pr.decompress(c.codec, raw, int(h.uncompressed))
		if !ok {
			return false
		}
		if c.optional { // definition levels, then the values
			switch h.levelEncoding {
			case encRLE:
				if len(b) < 4 {
					return false
				}
				n := binary.LittleEndian.Uint32(b)
				if uint64(n) > uint64(len(b)-4) {
					return false
				}
				b = b[4+n:]
			case encBitPacked:
				n := (int(h.values) + 7) / 8
				if h.values < 0 || n > len(b) {
					return false
				}
				b = b[n:]
			default:
				return false
			}
		}
		return plainE164(b)
	case pageDataV2:
		if h.encoding == encPlainDictionary || h.encoding == encRLEDictionary {
			return dict
		}
		levels := int64(h.defLen) + int64(h.repLen)
		if h.encoding != encPlain || h.defLen < 0 || h.repLen < 0 || levels > int64(len(raw)) || levels > int64(h.uncompressed) {
			return false
		}
		b := raw[levels:]
		if h.compressedV2 {
			var ok bool
			if b, ok = pr.decompress(c.codec, b, int(int64(h.uncompressed)-levels)); !ok {
				return false
			}
		}
		return plainE164(b)
	}
	return false
}

// decompress returns the n bytes that src decompresses to with the codec;
// ok is false for a codec it does not know or data that does not
// decompress to exactly n bytes.
func (pr *pageReader) decompress(codec string, src []byte, n int) ([]byte, bool) {
	switch codec {
	case "UNCOMPRESSED":
		return src, len(src) == n
	case "SNAPPY":
		if m, err := snappy.DecodedLen(src); err != nil || m != n {
			return nil, false
		}
		b, err := snappy.Decode(pr.buffer(n), src)
		return b, err == nil && len(b) == n
	case "ZSTD":
		if pr.zstd == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxPage))
			if err != nil {
				return nil, false
			}
			pr.zstd = d
		}
		b, err := pr.zstd.DecodeAll(src, pr.buffer(n)[:0])
		return b, err == nil && len(b) == n
	case "LZ4_RAW":
		b := pr.buffer(n)
		m, err := lz4.UncompressBlock(src, b)
		return b, err == nil && m == n
	case "BROTLI":
		return pr.readAll(brotli.NewReader(bytes.NewReader(src)), n)
	case "GZIP":
		z, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, false
		}
		return pr.readAll(z, n)
	}
	return nil, false
}

// readAll reads r, which must hold exactly n bytes.
func (pr *pageReader) readAll(r io.Reader, n int) ([]byte, bool) {
	b := pr.buffer(n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, false
	}
	extra, _ := r.Read(make([]byte, 1))
	return b, extra == 0
}

// buffer returns the reader's decompression buffer with length n.
func (pr *pageReader) buffer(n int) []byte {
	if cap(pr.plain) < n {
		pr.plain = make([]byte, n)
	}
	return pr.plain[:n]
}

// plainE164 reports whether b is PLAIN-encoded byte arrays, each a 4-byte
// little-endian length and that many bytes, all of them in E.164 form.
func plainE164(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 4 {
			return false
		}
		n := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) || !isE164(b[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// pageHeader is what parquetE164 needs of a Parquet PageHeader.
type pageHeader struct {
	typ                      int32
	uncompressed, compressed int32
	values                   int32 // a V1 data page's values, nulls included
	encoding                 int32 // of the values
	levelEncoding            int32 // of a V1 data page's definition levels
	defLen, repLen           int32 // a V2 data page's level bytes
	compressedV2             bool  // a V2 data page's values are compressed
}

// readPageHeader reads a PageHeader in Thrift's compact protocol.
func readPageHeader(t *thriftReader) (pageHeader, error) {
	h := pageHeader{typ: -1, compressed: -1, uncompressed: -1, encoding: -1, levelEncoding: -1, compressedV2: true}
	err := t.fields(0, func(id int16, typ byte) error {
		var err error
		switch {
		case id == 1 && typ == tI32:
			h.typ, err = t.i32()
		case id == 2 && typ == tI32:
			h.uncompressed, err = t.i32()
		case id == 3 && typ == tI32:
			h.compressed, err = t.i32()
		case id == 5 && typ == tStruct: // DataPageHeader
			err = t.fields(1, func(id int16, typ byte) error {
				switch {
				case id == 1 && typ == tI32:
					h.values, err = t.i32()
				case id == 2 && typ == tI32:
					h.encoding, err = t.i32()
				case id == 3 && typ == tI32:
					h.levelEncoding, err = t.i32()
				default:
					err = t.skip(typ, 1)
				}
				return err
			})
		case id == 7 && typ == tStruct: // DictionaryPageHeader
			err = t.fields(1, func(id int16, typ byte) error {
				if id == 2 && typ == tI32 {
					h.encoding, err = t.i32()
					return err
				}
				return t.skip(typ, 1)
			})
		case id == 8 && typ == tStruct: // DataPageHeaderV2
			err = t.fields(1, func(id int16, typ byte) error {
				switch {
				case id == 4 && typ == tI32:
					h.encoding, err = t.i32()
				case id == 5 && typ == tI32:
					h.defLen, err = t.i32()
				case id == 6 && typ == tI32:
					h.repLen, err = t.i32()
				case id == 7 && (typ == tTrue || typ == tFalse):
					h.compressedV2 = typ == tTrue
				default:
					err = t.skip(typ, 1)
				}
				return err
			})
		default:
			err = t.skip(typ, 0)
		}
		return err
	})
	return h, err
}

// Thrift compact protocol types.
const (
	tTrue   = 1
	tFalse  = 2
	tByte   = 3
	tI16    = 4
	tI32    = 5
	tI64    = 6
	tDouble = 7
	tBinary = 8
	tList   = 9
	tSet    = 10
	tMap    = 11
	tStruct = 12

	maxDepth = 16 // of nested structs, lists and maps
)

var errThrift = errors.New("malformed Thrift")

// thriftReader reads Thrift's compact protocol, at most left bytes.
type thriftReader struct {
	r          *bufio.Reader
	left, used int64
}

func (t *thriftReader) read() int64 { return t.used }

func (t *thriftReader) byte() (byte, error) {
	if t.left <= 0 {
		return 0, errThrift
	}
	b, err := t.r.ReadByte()
	if err != nil {
		return 0, errThrift
	}
	t.left--
	t.used++
	return b, nil
}

func (t *thriftReader) uvarint() (uint64, error) {
	var x uint64
	for s := uint(0); s < 64; s += 7 {
		b, err := t.byte()
		if err != nil {
			return 0, err
		}
		x |= uint64(b&0x7f) << s
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, errThrift
}

func (t *thriftReader) varint() (int64, error) {
	u, err := t.uvarint()
	return int64(u>>1) ^ -int64(u&1), err
}

func (t *thriftReader) i32() (int32, error) {
	v, err := t.varint()
	if err != nil || v != int64(int32(v)) {
		return 0, errThrift
	}
	return int32(v), nil
}

func (t *thriftReader) discard(n uint64) error {
	if n > uint64(t.left) {
		return errThrift
	}
	if _, err := t.r.Discard(int(n)); err != nil {
		return errThrift
	}
	t.left -= int64(n)
	t.used += int64(n)
	return nil
}

// fields reads a struct's fields, calling f with each field's id and type;
// f reads or skips the value.
func (t *thriftReader) fields(depth int, f func(id int16, typ byte) error) error {
	if depth > maxDepth {
		return errThrift
	}
	var id int16
	for {
		b, err := t.byte()
		if err != nil {
			return err
		}
		if b == 0 {
			return nil
		}
		if d := b >> 4; d != 0 {
			id += int16(d)
		} else {
			v, err := t.varint()
			if err != nil || v != int64(int16(v)) {
				return errThrift
			}
			id = int16(v)
		}
		if err := f(id, b&0x0f); err != nil {
			return err
		}
	}
}

// skip reads past a value of type typ.
func (t *thriftReader) skip(typ byte, depth int) error {
	if depth > maxDepth {
		return errThrift
	}
	switch typ {
	case tTrue, tFalse:
		return nil
	case tByte:
		_, err := t.byte()
		return err
	case tI16, tI32, tI64:
		_, err := t.uvarint()
		return err
	case tDouble:
		return t.discard(8)
	case tBinary:
		n, err := t.uvarint()
		if err != nil {
			return err
		}
		return t.discard(n)
	case tList, tSet:
		b, err := t.byte()
		if err != nil {
			return err
		}
		n := uint64(b >> 4)
		if n == 15 {
			if n, err = t.uvarint(); err != nil {
				return err
			}
		}
		return t.skipN(n, b&0x0f, depth)
	case tMap:
		n, err := t.uvarint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := t.byte()
		if err != nil {
			return err
		}
		for range n {
			if err := t.skipN(1, kv>>4, depth); err != nil {
				return err
			}
			if err := t.skipN(1, kv&0x0f, depth); err != nil {
				return err
			}
		}
		return nil
	case tStruct:
		return t.fields(depth+1, func(_ int16, typ byte) error { return t.skip(typ, depth+1) })
	}
	return errThrift
}

// skipN reads past n elements of type typ of a list, set or map, where a
// boolean takes a byte.
func (t *thriftReader) skipN(n uint64, typ byte, depth int) error {
	if n > uint64(t.left) { // every element takes a byte at least
		return errThrift
	}
	for range n {
		var err error
		if typ == tTrue || typ == tFalse {
			_, err = t.byte()
		} else {
			err = t.skip(typ, depth+1)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
