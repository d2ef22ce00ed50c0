// Package blobtest is the conformance suite that every blob.Store backend
// runs in its tests.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/blob"
)

// LargeSize is the size of the large objects the suite streams through a
// store: 64 MiB and an odd remainder, so it is not a multiple of any part
// or buffer size.
const LargeSize = 64<<20 + 12345

// Run runs the conformance suite. newStore must return an empty store that
// stays usable until the test ends; it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Large", testLarge},
		{"Overwrite", testOverwrite},
		{"Stat", testStat},
		{"List", testList},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"SizeMismatch", testSizeMismatch},
		{"FailingReader", testFailingReader},
		{"Cancel", testCancel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func testRoundTrip(t *testing.T, s blob.Store) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"byte", []byte{0}},
		{"small", []byte("sealed dataset chunk\n")},
		{"binary", Random(1, 100_000)},
	} {
		for _, size := range []int64{int64(len(tc.data)), -1} {
			key := fmt.Sprintf("rt/%s/size%d", tc.name, size)
			if err := s.Put(ctx, key, bytes.NewReader(tc.data), size); err != nil {
				t.Fatalf("Put(%q, %d bytes, size %d): %v", key, len(tc.data), size, err)
			}
			if got := MustGet(t, s, key); !bytes.Equal(got, tc.data) {
				t.Errorf("Get(%q) = %d bytes, want the %d bytes put", key, len(got), len(tc.data))
			}
			info, err := s.Stat(ctx, key)
			if err != nil {
				t.Fatalf("Stat(%q): %v", key, err)
			}
			if info.Key != key || info.Size != int64(len(tc.data)) {
				t.Errorf("Stat(%q) = %+v, want key %q size %d", key, info, key, len(tc.data))
			}
		}
	}
}

// testLarge streams LargeSize bytes in and out, with the size known and
// unknown, comparing SHA-256 digests rather than holding the data.
func testLarge(t *testing.T, s blob.Store) {
	ctx := t.Context()
	for _, size := range []int64{LargeSize, -1} {
		key := fmt.Sprintf("large/size%d", size)
		h := sha256.New()
		src := io.TeeReader(RandomReader(uint64(size), LargeSize), h)
		if err := s.Put(ctx, key, src, size); err != nil {
			t.Fatalf("Put(%q, size %d): %v", key, size, err)
		}
		want := h.Sum(nil)

		rc, err := s.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		h.Reset()
		n, err := io.Copy(h, rc)
		if err != nil {
			t.Fatalf("reading %q: %v", key, err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("closing %q: %v", key, err)
		}
		if n != LargeSize {
			t.Errorf("Get(%q) returned %d bytes, want %d", key, n, LargeSize)
		}
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			t.Errorf("Get(%q) SHA-256 = %x, want %x", key, got, want)
		}
		if info, err := s.Stat(ctx, key); err != nil || info.Size != LargeSize {
			t.Errorf("Stat(%q) = %+v, %v; want size %d", key, info, err, LargeSize)
		}
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	ctx := t.Context()
	MustPut(t, s, "ow/k", []byte("first version, longer than the second"))
	MustPut(t, s, "ow/k", []byte("second"))
	if got := MustGet(t, s, "ow/k"); string(got) != "second" {
		t.Errorf("after overwrite Get = %q, want %q", got, "second")
	}
	if info, err := s.Stat(ctx, "ow/k"); err != nil || info.Size != 6 {
		t.Errorf("after overwrite Stat = %+v, %v; want size 6", info, err)
	}
	MustPut(t, s, "ow/k", nil)
	if got := MustGet(t, s, "ow/k"); len(got) != 0 {
		t.Errorf("after overwrite with empty Get = %q, want empty", got)
	}
	if infos := MustList(t, s, "ow/"); len(infos) != 1 {
		t.Errorf("List(ow/) after overwrites = %v, want one object", Keys(infos))
	}
}

func testStat(t *testing.T, s blob.Store) {
	ctx := t.Context()
	before := time.Now()
	MustPut(t, s, "st/obj", make([]byte, 4321))
	after := time.Now()
	info, err := s.Stat(ctx, "st/obj")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Key != "st/obj" || info.Size != 4321 {
		t.Errorf("Stat = %+v, want key st/obj size 4321", info)
	}
	// S3 rounds modification times to the second; allow for that and a
	// little clock skew between client and server.
	if info.ModTime.Before(before.Add(-5*time.Second)) || info.ModTime.After(after.Add(5*time.Second)) {
		t.Errorf("Stat ModTime = %v, want between %v and %v", info.ModTime, before, after)
	}
}

func testList(t *testing.T, s blob.Store) {
	keys := []string{"ls/a/1", "ls/a/2", "ls/a/b/3", "ls/a-b/4", "ls/ab/5", "ls/b/6", "ls/c", "other/7"}
	for i, k := range keys {
		MustPut(t, s, k, bytes.Repeat([]byte{'x'}, i))
	}
	sizes := map[string]int64{}
	for i, k := range keys {
		sizes[k] = int64(i)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"ls/a-b/4", "ls/a/1", "ls/a/2", "ls/a/b/3", "ls/ab/5", "ls/b/6", "ls/c", "other/7"}},
		{"ls/a/", []string{"ls/a/1", "ls/a/2", "ls/a/b/3"}},
		{"ls/a", []string{"ls/a-b/4", "ls/a/1", "ls/a/2", "ls/a/b/3", "ls/ab/5"}},
		{"ls/a/b", []string{"ls/a/b/3"}},
		{"ls/a/1", []string{"ls/a/1"}},
		{"ls/c", []string{"ls/c"}},
		{"ls/c/", nil},
		{"ls/a/1/", nil},
		{"nothing/", nil},
		{"nothing", nil},
		{"o", []string{"other/7"}},
	} {
		infos := MustList(t, s, tc.prefix)
		if got := Keys(infos); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		for _, info := range infos {
			if info.Size != sizes[info.Key] || info.ModTime.IsZero() {
				t.Errorf("List(%q) entry %+v, want size %d and a ModTime", tc.prefix, info, sizes[info.Key])
			}
		}
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := t.Context()
	MustPut(t, s, "del/a/k", []byte("doomed"))
	MustPut(t, s, "del/a/keep", []byte("stays"))
	MustPut(t, s, "del/x/y/z", []byte("alone"))
	for _, k := range []string{"del/a/k", "del/x/y/z"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%q) after Delete = %v, want ErrNotFound", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Get(%q) after Delete = %v, want ErrNotFound", k, err)
		}
		if err := s.Delete(ctx, k); err != nil {
			t.Errorf("second Delete(%q) = %v, want nil", k, err)
		}
	}
	if err := s.Delete(ctx, "del/never/existed"); err != nil {
		t.Errorf("Delete of a key never stored = %v, want nil", err)
	}
	if got := Keys(MustList(t, s, "")); !slices.Equal(got, []string{"del/a/keep"}) {
		t.Errorf("List after deletes = %q, want [del/a/keep]", got)
	}
	if got := MustGet(t, s, "del/a/keep"); string(got) != "stays" {
		t.Errorf("sibling after Delete = %q, want %q", got, "stays")
	}
	// The emptied prefix can be written again.
	MustPut(t, s, "del/x/y/z", []byte("back"))
	if got := MustGet(t, s, "del/x/y/z"); string(got) != "back" {
		t.Errorf("Get after re-Put = %q, want %q", got, "back")
	}
}

func testNotFound(t *testing.T, s blob.Store) {
	ctx := t.Context()
	MustPut(t, s, "nf/dir/obj", []byte("x"))
	// "nf/dir" and "nf" are prefixes of a key, not objects.
	for _, k := range []string{"nf/missing", "missing", "nf/dir", "nf", "nf/dir/obj/below", "nf/dir/ob"} {
		if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", k, err)
		}
		rc, err := s.Get(ctx, k)
		if !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", k, err)
		}
		if rc != nil {
			rc.Close()
			t.Errorf("Get(%q) returned a reader with error %v", k, err)
		}
	}
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := t.Context()
	MustPut(t, s, "inv/ok", []byte("x"))
	bad := []string{"", "/abs", "a//b", "../escape", "inv/../inv/ok", "inv/./ok", "inv/ok/", `inv\ok`, ".hidden", "a b", "a\x00b", strings.Repeat("k", blob.MaxKeyLen+1)}
	for _, k := range bad {
		if err := s.Put(ctx, k, strings.NewReader("x"), 1); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Stat(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	for _, p := range []string{"/", "../", "inv//", ".h", "inv/./"} {
		if _, err := s.List(ctx, p); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("List(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
	if got := Keys(MustList(t, s, "")); !slices.Equal(got, []string{"inv/ok"}) {
		t.Errorf("List after refused Puts = %q, want [inv/ok]", got)
	}
	if got := MustGet(t, s, "inv/ok"); string(got) != "x" {
		t.Errorf("inv/ok = %q after refused operations, want %q", got, "x")
	}
}

func testSizeMismatch(t *testing.T, s blob.Store) {
	ctx := t.Context()
	MustPut(t, s, "sz/old", []byte("old"))
	for _, tc := range []struct {
		name string
		n    int   // bytes the reader holds
		size int64 // size declared to Put
	}{
		{"short", 10, 11},
		{"long", 11, 10},
		{"empty-declared", 1, 0},
		{"short-large", 6 << 20, 6<<20 + 1},
		{"long-large", 6<<20 + 1, 6 << 20},
	} {
		for _, key := range []string{"sz/new-" + tc.name, "sz/old"} {
			err := s.Put(ctx, key, bytes.NewReader(Random(2, tc.n)), tc.size)
			if !errors.Is(err, blob.ErrSizeMismatch) {
				t.Errorf("%s: Put(%q) of %d bytes declared as %d = %v, want ErrSizeMismatch", tc.name, key, tc.n, tc.size, err)
			}
		}
	}
	if got := Keys(MustList(t, s, "")); !slices.Equal(got, []string{"sz/old"}) {
		t.Errorf("List after failed Puts = %q, want [sz/old]", got)
	}
	if got := MustGet(t, s, "sz/old"); string(got) != "old" {
		t.Errorf("sz/old after failed overwrites = %q, want %q", got, "old")
	}
}

// errReader is the error FailingReader returns.
var errReader = errors.New("blobtest: reader failed")

// testFailingReader checks that a Put whose reader fails part way leaves no
// object (and no partial object) behind, and leaves an older object intact.
func testFailingReader(t *testing.T, s blob.Store) {
	ctx := t.Context()
	MustPut(t, s, "fail/old", []byte("old"))
	for _, n := range []int{0, 1000, 6<<20 + 7, 20 << 20} {
		for _, size := range []int64{int64(n) + 1000, -1} {
			for _, key := range []string{fmt.Sprintf("fail/new-%d", n), "fail/old"} {
				r := FailingReader(RandomReader(3, int64(n)), errReader)
				err := s.Put(ctx, key, r, size)
				if !errors.Is(err, errReader) {
					t.Errorf("Put(%q) with a reader failing after %d bytes (size %d) = %v, want the reader's error", key, n, size, err)
				}
			}
		}
	}
	if got := Keys(MustList(t, s, "")); !slices.Equal(got, []string{"fail/old"}) {
		t.Errorf("List after failed Puts = %q, want [fail/old]", got)
	}
	if got := MustGet(t, s, "fail/old"); string(got) != "old" {
		t.Errorf("fail/old after failed overwrites = %q, want %q", got, "old")
	}
}

func testCancel(t *testing.T, s blob.Store) {
	MustPut(t, s, "cx/old", Random(4, 3<<20))

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Put(cancelled, "cx/new", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	if rc, err := s.Get(cancelled, "cx/old"); !errors.Is(err, context.Canceled) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(cancelled, "cx/old"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.List(cancelled, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Delete(cancelled, "cx/old"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}

	// Cancelled part way through a Put, with the size known and unknown.
	for _, size := range []int64{LargeSize, -1} {
		for _, key := range []string{"cx/new", "cx/old"} {
			ctx, cancel := context.WithCancel(t.Context())
			r := &cancelReader{r: RandomReader(5, LargeSize), after: 8 << 20, cancel: cancel}
			err := s.Put(ctx, key, r, size)
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Put(%q, size %d) cancelled after %d bytes = %v, want context.Canceled", key, size, r.n, err)
			}
		}
	}
	if got := Keys(MustList(t, s, "")); !slices.Equal(got, []string{"cx/old"}) {
		t.Errorf("List after cancelled Puts = %q, want [cx/old]", got)
	}

	// Cancelled part way through reading a Get.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rc, err := s.Get(ctx, "cx/old")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1000)); err != nil {
		t.Fatalf("reading the first bytes: %v", err)
	}
	cancel()
	if n, err := io.Copy(io.Discard, rc); !errors.Is(err, context.Canceled) {
		t.Errorf("reading after cancel: %d more bytes, error %v; want context.Canceled", n, err)
	}
}

// cancelReader calls cancel once it has delivered after bytes and keeps
// delivering, as a source that does not watch the context would.
type cancelReader struct {
	r      io.Reader
	n      int64
	after  int64
	cancel func()
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n >= c.after {
		c.cancel()
	}
	return n, err
}

// MustPut stores data under key, failing the test on error.
func MustPut(t testing.TB, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// MustGet reads the object under key, failing the test on error.
func MustGet(t testing.TB, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return data
}

// MustList lists prefix, failing the test on error and checking that the
// result is sorted.
func MustList(t testing.TB, s blob.Store, prefix string) []blob.Info {
	t.Helper()
	infos, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if !slices.IsSortedFunc(infos, func(a, b blob.Info) int { return strings.Compare(a.Key, b.Key) }) {
		t.Errorf("List(%q) = %q, not sorted by key", prefix, Keys(infos))
	}
	return infos
}

// Keys returns the keys of infos.
func Keys(infos []blob.Info) []string {
	var keys []string
	for _, info := range infos {
		keys = append(keys, info.Key)
	}
	return keys
}

// RandomReader returns a reader of n deterministic pseudo-random bytes
// derived from seed, without holding them in memory.
func RandomReader(seed uint64, n int64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// Random returns n deterministic pseudo-random bytes derived from seed.
func Random(seed uint64, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(RandomReader(seed, int64(n)), b)
	return b
}

// FailingReader returns a reader that yields the bytes of r and then fails
// with err instead of io.EOF.
func FailingReader(r io.Reader, err error) io.Reader {
	return io.MultiReader(r, &errorReader{err})
}

type errorReader struct{ err error }

func (e *errorReader) Read([]byte) (int, error) { return 0, e.err }
