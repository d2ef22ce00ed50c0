package dataset

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// seeds returns real sealed files: the spec's vectors and files sealed here.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, v := range loadVectors(t) {
		out = append(out, unhex(t, v.Sealed))
	}
	key := fuzzKey(t)
	// Salts are fixed: fuzz workers rebuild the seeds in other processes.
	for i, pt := range [][]byte{nil, []byte("a"), pattern(64), pattern(200)} {
		for _, size := range []int64{int64(len(pt)), UnknownSize} {
			var buf bytes.Buffer
			salt := bytes.Repeat([]byte{byte(i)}, SaltSize)
			if _, err := seal(context.Background(), &buf, bytes.NewReader(pt), key, testHeader(64), size, Options{Rand: bytes.NewReader(salt)}); err != nil {
				t.Fatal(err)
			}
			out = append(out, buf.Bytes())
		}
	}
	if len(out) == 0 {
		t.Fatal("empty seed corpus")
	}
	return out
}

func fuzzKey(t testing.TB) Key {
	k, err := KeyFromBytes(unhex(t, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzParseHeader checks that parsing never panics and that a parsed header
// re-encodes to exactly the bytes it was parsed from.
func FuzzParseHeader(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedHeader) && !errors.Is(err, ErrUnsupportedVersion) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		enc := append(h.encode(), h.mac[:]...)
		if !bytes.Equal(enc, data[:h.Len()]) || !bytes.Equal(h.Bytes(), enc) {
			t.Fatalf("parse→encode not byte-identical")
		}
	})
}

// FuzzOpen feeds arbitrary bytes to the streaming reader and the random
// access reader under the seeds' key: each either refuses with a sentinel
// error or, having authenticated everything, returns the plaintext of an
// unmodified seed.
func FuzzOpen(f *testing.F) {
	ss := seeds(f)
	valid := map[string]bool{}
	for _, s := range ss {
		f.Add(s)
		valid[string(s)] = true
	}
	key := fuzzKey(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		_, err := Open(context.Background(), &out, bytes.NewReader(data), key, Options{Workers: 2})
		if err == nil && !valid[string(data)] {
			t.Fatalf("Open accepted a modified file")
		}
		if err != nil && !isSentinel(err) {
			t.Fatalf("Open: unexpected error kind: %v", err)
		}
		r, err := NewReader(bytes.NewReader(data), int64(len(data)), key)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("NewReader: unexpected error kind: %v", err)
			}
			return
		}
		for i := range r.NumChunks() {
			if _, err := r.Chunk(i, nil); err != nil && !isSentinel(err) {
				t.Fatalf("Chunk %d: unexpected error kind: %v", i, err)
			}
		}
	})
}
