package elgamal

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseCiphertexts checks that the list parser never panics, refuses
// with one of its sentinels, and that what it accepts re-encodes byte for
// byte.
func FuzzParseCiphertexts(f *testing.F) {
	_, _, pk := parties(f)
	var seeds int
	for _, n := range []int{0, 1, 3} {
		ms := make([]uint64, n)
		for i := range ms {
			ms[i] = uint64(i * 1000)
		}
		cs, err := pk.EncryptMany(ms, 1)
		if err != nil {
			f.Fatal(err)
		}
		enc, err := AppendCiphertexts(nil, cs, 1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
		f.Add(enc[:len(enc)-1])
		seeds++
	}
	if seeds == 0 {
		f.Fatal("empty seed corpus")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := ParseCiphertexts(data, 64, 1)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrElement) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		out, err := AppendCiphertexts(nil, cs, 1)
		if err != nil {
			t.Fatalf("re-encoding a parsed list: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%x re-encodes to %x", data, out)
		}
	})
}
