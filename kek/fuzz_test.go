package kek_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kura-cc/kura/kek"
)

// FuzzUnwrap feeds arbitrary wrapped keys and aad to Unwrap: it never
// panics, and anything other than the genuine wrapped key and aad fails with
// ErrUnwrap.
func FuzzUnwrap(f *testing.F) {
	k := newFileKEK(f)
	ctx := context.Background()
	dek := bytes.Repeat([]byte{1}, 32)
	good, err := k.Wrap(ctx, dek, []byte("a/b/c"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("a/b/c"))
	f.Add(good[:20], []byte("a/b/c"))
	f.Add([]byte{}, []byte{})
	f.Add(append([]byte{2}, good[1:]...), []byte("a/b/c"))
	f.Fuzz(func(t *testing.T, wrapped, aad []byte) {
		got, err := k.Unwrap(ctx, wrapped, aad)
		if bytes.Equal(wrapped, good) && bytes.Equal(aad, []byte("a/b/c")) {
			if err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("genuine key: %x, %v", got, err)
			}
			return
		}
		if !errors.Is(err, kek.ErrUnwrap) || got != nil {
			t.Fatalf("Unwrap(%x, %q) = %x, %v; want ErrUnwrap", wrapped, aad, got, err)
		}
	})
}
