package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/blob/internal/blobtest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.Context(), Config{Dir: filepath.Join(t.TempDir(), "blobs")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
}

func TestNewRequiresDir(t *testing.T) {
	if _, err := New(t.Context(), Config{}); err == nil {
		t.Fatal("New with no Dir succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(t.Context(), Config{Dir: file}); err == nil {
		t.Fatal("New on a regular file succeeded")
	}
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s, err := New(t.Context(), Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if logs.Len() > 0 {
			t.Errorf("unexpected log output:\n%s", logs.String())
		}
	}()
	blobtest.MustPut(t, s, "datasets/d1/data.kura", []byte("ciphertext"))
	got, err := os.ReadFile(filepath.Join(dir, "datasets", "d1", "data.kura"))
	if err != nil || string(got) != "ciphertext" {
		t.Fatalf("object file = %q, %v; want %q", got, err, "ciphertext")
	}
	fi, err := os.Stat(filepath.Join(dir, "datasets", "d1", "data.kura"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("object mode = %v, want 0600", perm)
	}
	// Deleting the only object removes the directories named after it.
	if err := s.Delete(t.Context(), "datasets/d1/data.kura"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("store directory after Delete holds %v, %v; want nothing", entries, err)
	}
}

func TestConflict(t *testing.T) {
	s := newStore(t)
	blobtest.MustPut(t, s, "a", []byte("object a"))
	blobtest.MustPut(t, s, "p/q", []byte("object p/q"))
	for _, key := range []string{"a/b", "a/b/c", "p"} {
		err := s.Put(t.Context(), key, strings.NewReader("x"), 1)
		if !errors.Is(err, ErrConflict) {
			t.Errorf("Put(%q) = %v, want ErrConflict", key, err)
		}
	}
	if got := blobtest.Keys(blobtest.MustList(t, s, "")); !slices.Equal(got, []string{"a", "p/q"}) {
		t.Errorf("List after conflicting Puts = %q, want [a p/q]", got)
	}
	// Deleting a prefix is a no-op, not an error, and keeps its objects.
	if err := s.Delete(t.Context(), "p"); err != nil {
		t.Errorf("Delete(p) = %v, want nil", err)
	}
	if got := blobtest.MustGet(t, s, "p/q"); string(got) != "object p/q" {
		t.Errorf("p/q after Delete(p) = %q", got)
	}
}

// TestTemporaryFilesInvisible checks that a temporary file left by a crash
// is not an object and does not disturb Put, List or Delete.
func TestTemporaryFilesInvisible(t *testing.T) {
	dir := t.TempDir()
	s, err := New(t.Context(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	blobtest.MustPut(t, s, "r/obj", []byte("whole"))
	orphan := filepath.Join(dir, "r", tmpPrefix+"CRASHED")
	if err := os.WriteFile(orphan, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".trash", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := blobtest.Keys(blobtest.MustList(t, s, "")); !slices.Equal(got, []string{"r/obj"}) {
		t.Errorf("List = %q, want [r/obj]", got)
	}
	blobtest.MustPut(t, s, "r/obj", []byte("again"))
	if got := blobtest.MustGet(t, s, "r/obj"); string(got) != "again" {
		t.Errorf("r/obj = %q, want %q", got, "again")
	}
}

// TestFailedPutLeavesNoFiles checks that a failed Put removes its temporary
// file, not only that the key stays empty.
func TestFailedPutLeavesNoFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := New(t.Context(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	blobtest.MustPut(t, s, "f/old", []byte("old"))
	errBoom := errors.New("boom")
	r := blobtest.FailingReader(blobtest.RandomReader(1, 3<<20), errBoom)
	if err := s.Put(t.Context(), "f/new", r, -1); !errors.Is(err, errBoom) {
		t.Fatalf("Put with failing reader = %v, want the reader's error", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"old"}) {
		t.Errorf("directory after failed Put holds %q, want [old]", names)
	}
}

// TestSymlinkEscape checks that a symbolic link planted in the store
// directory cannot make the store read or write outside it.
func TestSymlinkEscape(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	s, err := New(t.Context(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rc, err := s.Get(t.Context(), "link/secret"); err == nil {
		rc.Close()
		t.Error("Get through a symlink out of the store succeeded")
	}
	if err := s.Put(t.Context(), "link/planted", strings.NewReader("x"), 1); err == nil {
		t.Error("Put through a symlink out of the store succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); err == nil {
		t.Error("Put wrote a file outside the store")
	}
}

// TestConcurrentPuts checks that readers racing with writers of the same
// key only ever see one complete version.
func TestConcurrentPuts(t *testing.T) {
	s := newStore(t)
	versions := [][]byte{
		bytes.Repeat([]byte{'a'}, 64<<10),
		bytes.Repeat([]byte{'b'}, 256<<10+1),
		bytes.Repeat([]byte{'c'}, 17),
	}
	blobtest.MustPut(t, s, "race/k", versions[0])
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := 0; ctx.Err() == nil && j < 20; j++ {
				v := versions[(i+j)%len(versions)]
				if err := s.Put(ctx, "race/k", bytes.NewReader(v), int64(len(v))); err != nil && ctx.Err() == nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	for range 100 {
		got := blobtest.MustGet(t, s, "race/k")
		if !slices.ContainsFunc(versions, func(v []byte) bool { return bytes.Equal(v, got) }) {
			t.Errorf("Get returned %d bytes that are no complete version", len(got))
			break
		}
	}
	cancel()
	wg.Wait()
}

// TestPutMemoryBounded checks that Put streams: storing LargeSize bytes
// allocates a small fraction of that.
func TestPutMemoryBounded(t *testing.T) {
	s := newStore(t)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := s.Put(t.Context(), "mem/k", blobtest.RandomReader(9, blobtest.LargeSize), -1); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(t.Context(), "mem/k")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != blobtest.LargeSize {
		t.Fatalf("read back %d bytes, %v", n, err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("Put and Get of %d bytes allocated %d bytes, want under 8 MiB", blobtest.LargeSize, alloc)
	}
}
