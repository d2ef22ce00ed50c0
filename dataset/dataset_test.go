package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/keyfile"
)

func testKey(b byte) Key {
	k, _ := KeyFromBytes(bytes.Repeat([]byte{b}, KeySize))
	return k
}

func testHeader(cs int) Header {
	return Header{DatasetID: "test-ds", Format: "parquet", Schema: []byte(`{"columns":[{"name":"e","type":"string"}]}`), ChunkSize: cs}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// sealFile seals pt with SealFile (known size) and returns the sealed bytes.
func sealFile(t testing.TB, pt []byte, key Key, h Header) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	if err := os.WriteFile(in, pt, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := SealFile(context.Background(), out, in, key, h, Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sealStream seals pt with Seal (unknown size).
func sealStream(t testing.TB, pt []byte, key Key, h Header, workers int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Seal(context.Background(), &buf, bytes.NewReader(pt), key, h, Options{Workers: workers}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// openFile runs OpenFile on sealed and checks that no output remains on error.
func openFile(t *testing.T, sealed []byte, key Key) ([]byte, error) {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "sealed"), filepath.Join(dir, "plain")
	if err := os.WriteFile(in, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenFile(context.Background(), out, in, key, Options{Workers: 3})
	entries, _ := os.ReadDir(dir)
	if err != nil {
		if len(entries) != 1 {
			t.Errorf("OpenFile failed but left %d entries in the directory: %v", len(entries), entries)
		}
		return nil, err
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v, want 0600", st.Mode().Perm())
	}
	return os.ReadFile(out)
}

func TestRoundTrip(t *testing.T) {
	const cs = 64
	key := testKey(1)
	sizes := map[string][]byte{
		"empty":           nil,
		"one byte":        {0x42},
		"one chunk":       pattern(cs),
		"exact multiple":  pattern(4 * cs),
		"chunk plus one":  pattern(cs + 1),
		"many chunks":     pattern(37*cs + 13),
		"non-ASCII":       []byte(strings.Repeat("蔵の扉は持ち主が揃って初めて開く。", 9)),
		"default chunk+1": pattern(DefaultChunkSize + 1),
	}
	for name, pt := range sizes {
		t.Run(name, func(t *testing.T) {
			h := testHeader(cs)
			if name == "default chunk+1" {
				h.ChunkSize = 0
			}
			for _, mode := range []string{"file", "stream1", "stream4"} {
				var sealed []byte
				switch mode {
				case "file":
					sealed = sealFile(t, pt, key, h)
				case "stream1":
					sealed = sealStream(t, pt, key, h, 1)
				case "stream4":
					sealed = sealStream(t, pt, key, h, 4)
				}
				got, err := openFile(t, sealed, key)
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if !bytes.Equal(got, pt) {
					t.Fatalf("%s: round trip changed the plaintext", mode)
				}
				var out bytes.Buffer
				hdr, err := Open(context.Background(), &out, bytes.NewReader(sealed), key, Options{Workers: 1})
				if err != nil || !bytes.Equal(out.Bytes(), pt) {
					t.Fatalf("%s: Open: %v", mode, err)
				}
				out.Reset() // parallel, streamed files included
				if _, err := OpenAt(context.Background(), &out, bytes.NewReader(sealed), int64(len(sealed)), key, Options{Workers: 4}); err != nil || !bytes.Equal(out.Bytes(), pt) {
					t.Fatalf("%s: OpenAt: %v", mode, err)
				}
				if hdr.DatasetID != "test-ds" || hdr.Format != "parquet" || hdr.KeyID != key.ID() {
					t.Errorf("%s: header %+v", mode, hdr)
				}
				wantSize := int64(UnknownSize)
				if mode == "file" {
					wantSize = int64(len(pt))
				}
				if hdr.Size != wantSize {
					t.Errorf("%s: header size %d, want %d", mode, hdr.Size, wantSize)
				}
				// Random access agrees.
				r, err := NewReader(bytes.NewReader(sealed), int64(len(sealed)), key)
				if err != nil {
					t.Fatalf("%s: NewReader: %v", mode, err)
				}
				if r.Size() != int64(len(pt)) {
					t.Fatalf("%s: Reader.Size %d, want %d", mode, r.Size(), len(pt))
				}
				all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
				if err != nil || !bytes.Equal(all, pt) {
					t.Fatalf("%s: ReadAt: %v", mode, err)
				}
			}
		})
	}
}

func TestSealsDiffer(t *testing.T) {
	key := testKey(1)
	a := sealStream(t, []byte("same"), key, testHeader(64), 1)
	b := sealStream(t, []byte("same"), key, testHeader(64), 1)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical: salt not random")
	}
}

// layout returns the offsets of the chunks of a sealed file.
func layout(t *testing.T, sealed []byte) (hdrLen int, chunks [][2]int) {
	t.Helper()
	h, err := ParseHeader(sealed)
	if err != nil {
		t.Fatal(err)
	}
	unit := h.ChunkSize + TagSize
	for off := h.Len(); off < len(sealed); off += unit {
		chunks = append(chunks, [2]int{off, min(off+unit, len(sealed))})
	}
	return h.Len(), chunks
}

func TestTampering(t *testing.T) {
	const cs = 64
	key := testKey(1)
	pt := pattern(3*cs + 8) // four chunks, the last one short
	h := testHeader(cs)
	known := sealFile(t, pt, key, h)
	stream := sealStream(t, pt, key, h, 2)
	other := sealFile(t, pt, key, h) // same key, another salt
	hl, ch := layout(t, known)
	if len(ch) != 4 {
		t.Fatalf("%d chunks, want 4", len(ch))
	}
	flip := func(b []byte, off int) []byte { b = bytes.Clone(b); b[off] ^= 1; return b }
	cut := func(b []byte, n int) []byte { return bytes.Clone(b[:n]) }
	chunk := func(b []byte, i int) []byte { return b[ch[i][0]:ch[i][1]] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hdr := known[:hl]
	_, sch := layout(t, stream)
	tests := []struct {
		name   string
		sealed []byte
		key    Key
		want   error
	}{
		{"magic", flip(known, 1), key, ErrMalformedHeader},
		{"version", flip(known, 9), key, ErrUnsupportedVersion},
		{"header length", flip(known, 13), key, ErrMalformedHeader},
		{"chunk size", flip(known, 17), key, ErrTampered},
		{"plaintext size", flip(known, 25), key, ErrTampered},
		{"salt", flip(known, 30), key, ErrTampered},
		{"key id", flip(known, 60), key, ErrWrongKey},
		{"format", flip(known, 91), key, ErrTampered},
		{"dataset id", flip(known, 100), key, ErrTampered},
		{"schema", flip(known, hl-40), key, ErrTampered},
		{"header mac", flip(known, hl-1), key, ErrTampered},
		{"first chunk body", flip(known, ch[0][0]+3), key, ErrTampered},
		{"middle chunk tag", flip(known, ch[1][1]-1), key, ErrTampered},
		{"final chunk", flip(known, ch[3][0]), key, ErrTampered},
		{"wrong key", known, testKey(2), ErrWrongKey},
		{"truncated inside header", cut(known, 20), key, ErrTruncated},
		{"truncated after header", cut(known, hl), key, ErrTruncated},
		{"truncated at chunk boundary", cut(known, ch[2][1]), key, ErrTruncated},
		{"truncated inside a chunk", cut(known, ch[1][0]+10), key, ErrTruncated},
		{"truncated inside final chunk", cut(known, len(known)-1), key, ErrTruncated},
		{"final chunk dropped", join(hdr, chunk(known, 0), chunk(known, 1), chunk(known, 2)), key, ErrTruncated},
		{"reordered", join(hdr, chunk(known, 1), chunk(known, 0), chunk(known, 2), chunk(known, 3)), key, ErrTampered},
		{"chunk from another file", join(hdr, chunk(known, 0), other[ch[1][0]:ch[1][1]], chunk(known, 2), chunk(known, 3)), key, ErrTampered},
		{"header from another file", join(other[:hl], known[hl:]), key, ErrTampered},
		{"appended byte", join(known, []byte{0}), key, ErrTampered},
		{"appended chunk", join(known, chunk(known, 0)), key, ErrTampered},
		{"stream: truncated at chunk boundary", stream[:sch[2][1]], key, ErrTruncated},
		{"stream: truncated after header", stream[:hl], key, ErrTruncated},
		{"stream: final chunk cut (indistinguishable from modified)", stream[:len(stream)-2], key, ErrTampered},
		{"stream: final chunk cut below a tag", stream[:len(stream)-TagSize+2], key, ErrTruncated},
		{"stream: reordered", join(stream[:hl], stream[sch[1][0]:sch[1][1]], stream[sch[0][0]:sch[0][1]], stream[sch[2][0]:]), key, ErrTampered},
		{"stream: appended", join(stream, []byte("x")), key, ErrTampered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := openFile(t, tc.sealed, tc.key)
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenFile: got %v (%d plaintext bytes), want %v", err, len(got), tc.want)
			}
			var out bytes.Buffer
			if _, err := OpenAt(context.Background(), &out, bytes.NewReader(tc.sealed), int64(len(tc.sealed)), tc.key, Options{Workers: 4}); !errors.Is(err, tc.want) {
				t.Fatalf("OpenAt with 4 workers: got %v, want %v", err, tc.want)
			}
			// Random access refuses it too, at NewReader or at some chunk.
			r, err := NewReader(bytes.NewReader(tc.sealed), int64(len(tc.sealed)), tc.key)
			if err == nil {
				_, err = io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
			}
			if err == nil {
				t.Fatalf("Reader accepted it")
			}
			if !isSentinel(err) {
				t.Fatalf("Reader: %v is not a sentinel error", err)
			}
		})
	}
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrAuth, ErrMalformedHeader, ErrUnsupportedVersion} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestEveryHeaderBit(t *testing.T) {
	key := testKey(1)
	sealed := sealFile(t, []byte("x"), key, testHeader(64))
	hl, _ := layout(t, sealed)
	for i := range hl * 8 {
		b := bytes.Clone(sealed)
		b[i/8] ^= 1 << (i % 8)
		_, err := Open(context.Background(), io.Discard, bytes.NewReader(b), key, Options{})
		if err == nil || !isSentinel(err) {
			t.Fatalf("bit %d of the header flipped: %v", i, err)
		}
	}
}

func TestReaderChunks(t *testing.T) {
	key := testKey(3)
	pt := pattern(10*64 + 5)
	sealed := sealFile(t, pt, key, testHeader(64))
	r, err := NewReader(bytes.NewReader(sealed), int64(len(sealed)), key)
	if err != nil {
		t.Fatal(err)
	}
	if r.NumChunks() != 11 {
		t.Fatalf("%d chunks", r.NumChunks())
	}
	for _, i := range []int64{7, 0, 10, 3} {
		c, err := r.Chunk(i, nil)
		if err != nil || !bytes.Equal(c, pt[i*64:min(int(i+1)*64, len(pt))]) {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	p := make([]byte, 100)
	if n, err := r.ReadAt(p, 60); n != 100 || err != nil || !bytes.Equal(p, pt[60:160]) {
		t.Fatalf("ReadAt across chunks: %d %v", n, err)
	}
	// A damaged chunk fails alone.
	sealed[r.Header().Len()+5*(64+TagSize)+1] ^= 1
	if _, err := r.Chunk(5, nil); !errors.Is(err, ErrTampered) {
		t.Fatalf("damaged chunk: %v", err)
	}
	if _, err := r.Chunk(6, nil); err != nil {
		t.Fatalf("chunk after the damaged one: %v", err)
	}
}

func TestKeyRedacted(t *testing.T) {
	k := testKey(0xab)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("k", "key", k, "ptr", &k)
	s := fmt.Sprintf("%v %+v %#v %s %x %X %d %q", k, k, k, k, k, k, k, k) + logs.String()
	if strings.Contains(strings.ToLower(s), "abab") || strings.Contains(s, "171") {
		t.Fatalf("key material printed: %s", s)
	}
	if !strings.Contains(s, "REDACTED") {
		t.Fatalf("no REDACTED in %s", s)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	k := NewKey()
	if err := WriteKeyFile(p, k); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(p, k); err == nil {
		t.Fatal("WriteKeyFile overwrote an existing key file")
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	got, err := ReadKeyFile(p)
	if err != nil || !got.Equal(k) {
		t.Fatalf("ReadKeyFile: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o666} {
		os.Chmod(p, mode)
		if _, err := ReadKeyFile(p); !errors.Is(err, ErrInvalidKey) || !errors.Is(err, keyfile.ErrInsecure) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Fatalf("mode %v: %v, want ErrInvalidKey naming chmod 600", mode, err)
		}
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("kura-data-key-v1 abcd\n"), 0o600)
	if _, err := ReadKeyFile(bad); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short key accepted: %v", err)
	}
	if a, b := NewKey(), NewKey(); a.ID() == b.ID() {
		t.Fatal("two new keys share an id")
	}
}

func TestSourceChanged(t *testing.T) {
	var out bytes.Buffer
	_, err := seal(context.Background(), &out, bytes.NewReader(make([]byte, 100)), testKey(1), testHeader(64), 50, Options{})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("longer source: %v", err)
	}
	_, err = seal(context.Background(), &out, bytes.NewReader(make([]byte, 10)), testKey(1), testHeader(64), 50, Options{})
	if !errors.Is(err, ErrSourceChanged) {
		t.Fatalf("shorter source: %v", err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Seal(ctx, io.Discard, bytes.NewReader(make([]byte, 1<<20)), testKey(1), testHeader(1024), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Seal: %v", err)
	}
}
