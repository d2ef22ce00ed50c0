// Package storetest is the conformance suite every key broker store backend
// passes. A backend's tests call Run with a function that opens its store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/keybroker/store"
)

// Open returns a new handle on the database named db, creating the database,
// empty, on its first use within t. Two calls with the same t and db return
// independent handles (own connections: a restart, or a second replica) on
// the same data; different names within one t are different databases. The
// suite closes what it opens, but Open may also close on t.Cleanup (Close is
// idempotent).
type Open func(t *testing.T, db string) store.Store

// Run runs the conformance suite against a backend.
func Run(t *testing.T, open Open) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, open Open)
	}{
		{"ResourceVersions", testResourceVersions},
		{"InvalidResources", testInvalidResources},
		{"Delete", testDelete},
		{"List", testList},
		{"Rewrap", testRewrap},
		{"Policies", testPolicies},
		{"Audit", testAudit},
		{"Persistence", testPersistence},
		{"ConcurrentVersions", testConcurrentVersions},
		{"ConcurrentAudit", testConcurrentAudit},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func sealed(path string, i int) *store.Resource {
	return &store.Resource{
		Path:       path,
		Sealed:     fmt.Appendf(nil, "sealed:%s:%d", path, i),
		WrappedDEK: fmt.Appendf(nil, "wrapped:%s:%d", path, i),
		KEKID:      "file:sha256:0000000000000001",
		CreatedBy:  "admin@example",
	}
}

func mustPut(t *testing.T, s store.Store, r *store.Resource) int64 {
	t.Helper()
	v, err := s.PutResource(context.Background(), r)
	if err != nil {
		t.Fatalf("PutResource(%s): %v", r.Path, err)
	}
	return v
}

func testResourceVersions(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	const path = "repo/key/tag"

	if _, err := s.GetResource(ctx, path); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetResource(absent) = %v; want ErrNotFound", err)
	}
	before := time.Now().Add(-time.Second)
	for i := 1; i <= 3; i++ {
		r := sealed(path, i)
		r.Version = 99 // ignored
		r.PolicyID = fmt.Sprintf("policy-%d", i)
		r.Metadata = map[string]string{"content-type": "application/octet-stream", "i": fmt.Sprint(i), "ünï": "cödé"}
		if v := mustPut(t, s, r); v != int64(i) {
			t.Fatalf("version %d; want %d", v, i)
		}
	}
	got, err := s.GetResource(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	want := sealed(path, 3)
	if got.Path != path || got.Version != 3 || !bytes.Equal(got.Sealed, want.Sealed) || !bytes.Equal(got.WrappedDEK, want.WrappedDEK) ||
		got.KEKID != want.KEKID || got.Deleted || got.CreatedBy != "admin@example" || got.PolicyID != "policy-3" ||
		got.Metadata["i"] != "3" || got.Metadata["ünï"] != "cödé" || len(got.Metadata) != 3 {
		t.Errorf("GetResource = %+v", got)
	}
	if got.CreatedAt.Location() != time.UTC || got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) ||
		got.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("CreatedAt = %v; want recent UTC with microsecond precision", got.CreatedAt)
	}
	for i := int64(1); i <= 3; i++ {
		r, err := s.GetResourceVersion(ctx, path, i)
		if err != nil {
			t.Fatal(err)
		}
		if r.Version != i || !bytes.Equal(r.Sealed, sealed(path, int(i)).Sealed) {
			t.Errorf("version %d = %+v", i, r)
		}
	}
	for _, v := range []int64{0, 4, -1} {
		if _, err := s.GetResourceVersion(ctx, path, v); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetResourceVersion(%d) = %v; want ErrNotFound", v, err)
		}
	}

	// An explicit CreatedAt is kept (normalised to UTC microseconds) and
	// empty metadata comes back nil.
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	r := sealed("repo/key/other", 0)
	r.CreatedAt = at
	r.Metadata = map[string]string{}
	mustPut(t, s, r)
	got, err = s.GetResource(ctx, "repo/key/other")
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(at.Truncate(time.Microsecond)) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v; want %v in UTC", got.CreatedAt, at.Truncate(time.Microsecond))
	}
	if got.Metadata != nil {
		t.Errorf("empty metadata came back as %#v; want nil", got.Metadata)
	}
	// The caller's struct is not modified.
	if r.Version != 0 || !r.CreatedAt.Equal(at) {
		t.Errorf("PutResource modified its argument: %+v", r)
	}
}

func testInvalidResources(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	for _, p := range []string{
		"", "a", "a/b", "a/b/c/d", "/a/b", "a/b/", "a//c", "a/b/c ", "a/b/c\x00", "a/b/ç", "../b/c", "a/./c", "a/b/..",
		"a/b/" + strings.Repeat("x", 129), "a\\b/c/d", "a/b/c?x", "a/b/%2e",
	} {
		if _, err := s.PutResource(ctx, &store.Resource{Path: p, Sealed: []byte("x"), WrappedDEK: []byte("x"), KEKID: "k"}); !errors.Is(err, store.ErrInvalidPath) {
			t.Errorf("PutResource(%q) = %v; want ErrInvalidPath", p, err)
		}
		if _, err := s.GetResource(ctx, p); !errors.Is(err, store.ErrInvalidPath) {
			t.Errorf("GetResource(%q) = %v; want ErrInvalidPath", p, err)
		}
		if _, err := s.DeleteResource(ctx, p, "x"); !errors.Is(err, store.ErrInvalidPath) {
			t.Errorf("DeleteResource(%q) = %v; want ErrInvalidPath", p, err)
		}
	}
	mustPut(t, s, sealed("A-z_0.9/"+strings.Repeat("t", 128)+"/..x", 1))

	base := func() *store.Resource { return sealed("repo/key/bad", 1) }
	for name, edit := range map[string]func(r *store.Resource){
		"nil sealed":       func(r *store.Resource) { r.Sealed = nil },
		"huge sealed":      func(r *store.Resource) { r.Sealed = make([]byte, store.MaxSealedSize+1) },
		"nil wrapped":      func(r *store.Resource) { r.WrappedDEK = nil },
		"empty KEK id":     func(r *store.Resource) { r.KEKID = "" },
		"tombstone":        func(r *store.Resource) { r.Deleted = true },
		"NUL in by":        func(r *store.Resource) { r.CreatedBy = "a\x00b" },
		"bad UTF-8 policy": func(r *store.Resource) { r.PolicyID = "\xff" },
		"empty meta key":   func(r *store.Resource) { r.Metadata = map[string]string{"": "v"} },
		"NUL meta value":   func(r *store.Resource) { r.Metadata = map[string]string{"k": "\x00"} },
		"huge metadata": func(r *store.Resource) {
			r.Metadata = map[string]string{"k": strings.Repeat("v", store.MaxMetadataSize)}
		},
	} {
		r := base()
		edit(r)
		if _, err := s.PutResource(ctx, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: PutResource = %v; want ErrInvalid", name, err)
		}
	}
	if _, err := s.PutResource(ctx, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PutResource(nil) = %v; want ErrInvalid", err)
	}
	if _, err := s.GetResource(ctx, "repo/key/bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rejected writes left a resource: %v", err)
	}
	if _, err := s.ListResources(ctx, "a\x00"); err == nil {
		t.Error("ListResources(NUL prefix) succeeded")
	}
}

func testDelete(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	const path = "repo/key/del"
	if _, err := s.DeleteResource(ctx, path, "admin"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteResource(absent) = %v; want ErrNotFound", err)
	}
	mustPut(t, s, sealed(path, 1))
	mustPut(t, s, sealed(path, 2))
	v, err := s.DeleteResource(ctx, path, "deleter")
	if err != nil || v != 3 {
		t.Fatalf("DeleteResource = %d, %v; want 3", v, err)
	}
	if _, err := s.GetResource(ctx, path); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetResource(deleted) = %v; want ErrNotFound", err)
	}
	if _, err := s.DeleteResource(ctx, path, "again"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteResource(deleted) = %v; want ErrNotFound", err)
	}
	tomb, err := s.GetResourceVersion(ctx, path, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !tomb.Deleted || tomb.Sealed != nil || tomb.WrappedDEK != nil || tomb.KEKID != "" || tomb.CreatedBy != "deleter" || tomb.CreatedAt.IsZero() {
		t.Errorf("tombstone = %+v", tomb)
	}
	if old, err := s.GetResourceVersion(ctx, path, 2); err != nil || old.Deleted || !bytes.Equal(old.Sealed, sealed(path, 2).Sealed) {
		t.Errorf("history after delete = %+v, %v", old, err)
	}
	if v := mustPut(t, s, sealed(path, 4)); v != 4 {
		t.Errorf("put after delete = version %d; want 4", v)
	}
	if got, err := s.GetResource(ctx, path); err != nil || got.Version != 4 {
		t.Errorf("GetResource after re-put = %+v, %v", got, err)
	}
}

func testList(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	if got, err := s.ListResources(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("ListResources(empty store) = %v, %v", got, err)
	}
	for _, p := range []string{"b/t/1", "a_b/t/1", "a-b/t/1", "aXb/t/1", "a/t/2", "a/t/1", "a/u/1", "a/t/gone", "a/t/1"} {
		r := sealed(p, 1)
		r.Metadata = map[string]string{"p": p}
		mustPut(t, s, r)
	}
	if _, err := s.DeleteResource(ctx, "a/t/gone", "x"); err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string][]string{
		"":      {"a-b/t/1", "a/t/1", "a/t/2", "a/u/1", "aXb/t/1", "a_b/t/1", "b/t/1"},
		"a/":    {"a/t/1", "a/t/2", "a/u/1"},
		"a/t/":  {"a/t/1", "a/t/2"},
		"a_":    {"a_b/t/1"}, // "_" is not a wildcard
		"a%":    nil,         // nor is "%"
		"a/t/1": {"a/t/1"},
		"zzz":   nil,
		"ü":     nil,
	} {
		got, err := s.ListResources(ctx, prefix)
		if err != nil {
			t.Fatalf("ListResources(%q): %v", prefix, err)
		}
		var paths []string
		for _, r := range got {
			paths = append(paths, r.Path)
			if r.Deleted || r.Metadata["p"] != r.Path || r.KEKID == "" || r.CreatedAt.IsZero() {
				t.Errorf("listed %+v", r)
			}
		}
		if !slices.Equal(paths, want) {
			t.Errorf("ListResources(%q) = %q; want %q", prefix, paths, want)
		}
		for _, r := range got {
			if r.Path == "a/t/1" && r.Version != 2 {
				t.Errorf("a/t/1 listed at version %d; want latest 2", r.Version)
			}
		}
	}
}

func testRewrap(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	const oldID, newID = "file:sha256:00000000000000aa", "file:sha256:00000000000000bb"
	total := 0
	for i := range 300 { // more than one batch
		r := sealed(fmt.Sprintf("repo/key/%03d", i%120), i)
		r.KEKID = oldID
		mustPut(t, s, r)
		total++
	}
	if _, err := s.DeleteResource(ctx, "repo/key/000", "x"); err != nil {
		t.Fatal(err)
	}
	r := sealed("repo/key/already", 0)
	r.KEKID = newID
	mustPut(t, s, r)

	rewrap := func(r *store.Resource) ([]byte, string, error) {
		if r.Deleted || r.Sealed != nil {
			t.Errorf("Rewrap passed %+v; want live versions without Sealed", r)
		}
		if r.KEKID == newID {
			return r.WrappedDEK, r.KEKID, nil
		}
		return append([]byte("re:"), r.WrappedDEK...), newID, nil
	}

	// An error stops the rotation; committed batches stay, each version is
	// wholly old or new.
	boom := errors.New("kms unavailable")
	calls := 0
	n, err := s.Rewrap(ctx, func(r *store.Resource) ([]byte, string, error) {
		calls++
		if calls > 270 {
			return nil, "", boom
		}
		return rewrap(r)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Rewrap with failing fn = %d, %v; want boom", n, err)
	}
	if n > 270 {
		t.Errorf("Rewrap reported %d replaced before failing after 270 calls", n)
	}
	n2, err := s.Rewrap(ctx, rewrap)
	if err != nil {
		t.Fatal(err)
	}
	if n+n2 != total {
		t.Errorf("Rewrap replaced %d + %d versions; want %d", n, n2, total)
	}
	if n, err := s.Rewrap(ctx, rewrap); err != nil || n != 0 {
		t.Errorf("second Rewrap = %d, %v; want 0", n, err)
	}
	for i := range 300 {
		path := fmt.Sprintf("repo/key/%03d", i%120)
		got, err := s.GetResourceVersion(ctx, path, int64(i/120+1))
		if err != nil {
			t.Fatal(err)
		}
		want := sealed(path, i)
		if got.KEKID != newID || !bytes.Equal(got.WrappedDEK, append([]byte("re:"), want.WrappedDEK...)) || !bytes.Equal(got.Sealed, want.Sealed) {
			t.Fatalf("after rewrap %s v%d = kek %s wrapped %q", path, got.Version, got.KEKID, got.WrappedDEK)
		}
	}
	if got, _ := s.GetResource(ctx, "repo/key/already"); !bytes.Equal(got.WrappedDEK, r.WrappedDEK) {
		t.Errorf("resource already under the target KEK was rewritten")
	}
	if _, err := s.Rewrap(ctx, func(r *store.Resource) ([]byte, string, error) { return nil, "other", nil }); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Rewrap returning an empty key = %v; want ErrInvalid", err)
	}
}

func testPolicies(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	for _, scope := range []string{"default", "repo/r1", "resource/r1/t/x"} {
		if _, err := s.GetPolicy(ctx, scope); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPolicy(%s) = %v; want ErrNotFound", scope, err)
		}
		for i := 1; i <= 2; i++ {
			v, err := s.PutPolicy(ctx, &store.Policy{Scope: scope, Version: 7, Rego: fmt.Sprintf("package p%d\n", i), CreatedBy: "owner"})
			if err != nil || v != int64(i) {
				t.Fatalf("PutPolicy(%s) = %d, %v; want %d", scope, v, err, i)
			}
		}
		p, err := s.GetPolicy(ctx, scope)
		if err != nil || p.Scope != scope || p.Version != 2 || p.Rego != "package p2\n" || p.CreatedBy != "owner" || p.CreatedAt.IsZero() {
			t.Errorf("GetPolicy(%s) = %+v, %v", scope, p, err)
		}
	}
	for _, scope := range []string{"", "defaults", "repo/", "repo/a/b", "resource/a/b", "resource/", "other/x", "repo/..", "Default"} {
		if _, err := s.PutPolicy(ctx, &store.Policy{Scope: scope, Rego: "package p"}); !errors.Is(err, store.ErrInvalidScope) {
			t.Errorf("PutPolicy(%q) = %v; want ErrInvalidScope", scope, err)
		}
		if _, err := s.GetPolicy(ctx, scope); !errors.Is(err, store.ErrInvalidScope) {
			t.Errorf("GetPolicy(%q) = %v; want ErrInvalidScope", scope, err)
		}
	}
	for _, p := range []*store.Policy{nil, {Scope: "default"}, {Scope: "default", Rego: " \n"}, {Scope: "default", Rego: "package\x00"}} {
		if _, err := s.PutPolicy(ctx, p); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutPolicy(%+v) = %v; want ErrInvalid", p, err)
		}
	}
}

func testAudit(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	if got, err := s.ListAudit(ctx, 0, 10); err != nil || len(got) != 0 {
		t.Fatalf("ListAudit(empty) = %v, %v", got, err)
	}
	at := time.Date(2031, 5, 6, 7, 8, 9, 999, time.UTC)
	for i := 1; i <= 5; i++ {
		rec := &store.AuditRecord{
			Seq: 42, Time: at, Decision: store.DecisionReleased, Reason: "policy allowed", Resource: "r/t/x",
			TokenDigest: "sha256:abc", PolicyID: "default@1", Requester: "127.0.0.1", TEE: "sim", Measurement: "m",
		}
		if i%2 == 0 {
			rec.Decision, rec.Reason, rec.Time = store.DecisionRefused, "bad \xff\x00 input", time.Time{}
		}
		seq, err := s.AppendAudit(ctx, rec)
		if err != nil || seq != int64(i) {
			t.Fatalf("AppendAudit = %d, %v; want %d", seq, err, i)
		}
	}
	got, err := s.ListAudit(ctx, 0, 0)
	if err != nil || len(got) != 5 {
		t.Fatalf("ListAudit = %d records, %v", len(got), err)
	}
	first := got[0]
	if first.Seq != 1 || !first.Time.Equal(at.Truncate(time.Microsecond)) || first.Decision != "released" || first.Reason != "policy allowed" ||
		first.Resource != "r/t/x" || first.TokenDigest != "sha256:abc" || first.PolicyID != "default@1" || first.Requester != "127.0.0.1" ||
		first.TEE != "sim" || first.Measurement != "m" {
		t.Errorf("record 1 = %+v", first)
	}
	if got[1].Reason != "bad \uFFFD\uFFFD input" || got[1].Time.IsZero() || got[1].Decision != "refused" {
		t.Errorf("record 2 = %+v; want sanitised reason and a time", got[1])
	}
	page, err := s.ListAudit(ctx, 2, 2)
	if err != nil || len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
		t.Errorf("ListAudit(2, 2) = %+v, %v", page, err)
	}
	if page, _ := s.ListAudit(ctx, 5, 10); len(page) != 0 {
		t.Errorf("ListAudit(5) = %+v", page)
	}
	long := strings.Repeat("é", store.MaxAuditFieldSize)
	seq, err := s.AppendAudit(ctx, &store.AuditRecord{Decision: store.DecisionRefused, Requester: long})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = s.ListAudit(ctx, seq-1, 1)
	if len(page) != 1 || len(page[0].Requester) > store.MaxAuditFieldSize || !strings.HasPrefix(long, page[0].Requester) {
		t.Errorf("long field stored as %d bytes", len(page[0].Requester))
	}
	for _, d := range []string{"", "allowed", "Released"} {
		if _, err := s.AppendAudit(ctx, &store.AuditRecord{Decision: d}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("AppendAudit(decision %q) = %v; want ErrInvalid", d, err)
		}
	}
	if _, err := s.AppendAudit(ctx, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AppendAudit(nil) = %v", err)
	}
}

func testPersistence(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	mustPut(t, s, sealed("repo/key/p", 1))
	if _, err := s.PutPolicy(ctx, &store.Policy{Scope: "default", Rego: "package p"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, &store.AuditRecord{Decision: store.DecisionReleased}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	s = open(t, "db")
	defer s.Close()
	if r, err := s.GetResource(ctx, "repo/key/p"); err != nil || !bytes.Equal(r.Sealed, sealed("repo/key/p", 1).Sealed) {
		t.Errorf("after reopen GetResource = %+v, %v", r, err)
	}
	if p, err := s.GetPolicy(ctx, "default"); err != nil || p.Rego != "package p" {
		t.Errorf("after reopen GetPolicy = %+v, %v", p, err)
	}
	if a, err := s.ListAudit(ctx, 0, 10); err != nil || len(a) != 1 {
		t.Errorf("after reopen ListAudit = %+v, %v", a, err)
	}
	if v := mustPut(t, s, sealed("repo/key/p", 2)); v != 2 {
		t.Errorf("version after reopen = %d; want 2", v)
	}
	other := open(t, "other")
	defer other.Close()
	if _, err := other.GetResource(ctx, "repo/key/p"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("database %q sees %q's data: %v", "other", "db", err)
	}
}

// replicas opens n handles on one database, as n broker replicas would.
func replicas(t *testing.T, open Open, n int) []store.Store {
	var out []store.Store
	for range n {
		s := open(t, "db")
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

func testConcurrentVersions(t *testing.T, open Open) {
	ctx := context.Background()
	stores := replicas(t, open, 3)
	const workers, each = 12, 15
	const path = "repo/key/hot"
	var (
		mu       sync.Mutex
		versions = map[int64]string{}
		wg       sync.WaitGroup
	)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range each {
				r := sealed(path, w*1000+i)
				v, err := s.PutResource(ctx, r)
				if err != nil {
					t.Error(err)
					return
				}
				// Concurrent writes to other paths and policies too.
				if _, err := s.PutPolicy(ctx, &store.Policy{Scope: "repo/repo", Rego: "package p"}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := versions[v]; dup {
					t.Errorf("version %d assigned twice (%s and %s)", v, prev, r.Sealed)
				}
				versions[v] = string(r.Sealed)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const n = workers * each
	if len(versions) != n {
		t.Fatalf("%d distinct versions; want %d", len(versions), n)
	}
	for v := int64(1); v <= n; v++ {
		r, err := stores[0].GetResourceVersion(ctx, path, v)
		if err != nil {
			t.Fatalf("version %d: %v", v, err)
		}
		if string(r.Sealed) != versions[v] {
			t.Errorf("version %d holds %q; writer was acknowledged %q", v, r.Sealed, versions[v])
		}
	}
	if r, err := stores[1].GetResource(ctx, path); err != nil || r.Version != n {
		t.Errorf("latest = %+v, %v; want version %d", r, err, n)
	}
	if p, err := stores[2].GetPolicy(ctx, "repo/repo"); err != nil || p.Version != n {
		t.Errorf("policy latest = %+v, %v; want version %d", p, err, n)
	}
}

func testConcurrentAudit(t *testing.T, open Open) {
	ctx := context.Background()
	stores := replicas(t, open, 3)
	const workers, each = 16, 25
	var (
		mu   sync.Mutex
		seqs = map[int64]string{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			for i := range each {
				reason := fmt.Sprintf("w%d-%d", w, i)
				seq, err := s.AppendAudit(ctx, &store.AuditRecord{Decision: store.DecisionRefused, Reason: reason})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := seqs[seq]; dup {
					t.Errorf("seq %d assigned twice (%s, %s)", seq, prev, reason)
				}
				seqs[seq] = reason
				mu.Unlock()
			}
		})
	}
	// A reader following the log with ListAudit never skips a record: it
	// sees sequence numbers in order without gaps.
	done := make(chan struct{})
	var followed []int64
	go func() {
		defer close(done)
		var after int64
		for after < workers*each {
			recs, err := stores[0].ListAudit(ctx, after, 50)
			if err != nil {
				t.Error(err)
				return
			}
			for _, r := range recs {
				followed = append(followed, r.Seq)
				after = r.Seq
			}
			if len(recs) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	wg.Wait()
	<-done
	if len(seqs) != workers*each {
		t.Fatalf("%d distinct seqs; want %d", len(seqs), workers*each)
	}
	for i, seq := range followed {
		if seq != int64(i+1) {
			t.Fatalf("follower saw seq %d at position %d: skipped or out of order", seq, i)
		}
	}
	all, err := stores[1].ListAudit(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if seqs[r.Seq] != r.Reason {
			t.Errorf("seq %d holds %q; writer was acknowledged %q", r.Seq, r.Reason, seqs[r.Seq])
		}
	}
}
