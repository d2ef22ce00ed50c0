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

	"github.com/kura-cc/kura/store"
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
		{"CountRuns", testCountRuns},
		{"RunSpends", testRunSpends},
		{"Persistence", testPersistence},
		{"ConcurrentVersions", testConcurrentVersions},
		{"ConcurrentAudit", testConcurrentAudit},
		{"Collaborations", testCollaborations},
		{"ConcurrentCollaborations", testConcurrentCollaborations},
		{"Ephemeral", testEphemeral},
		{"EphemeralExpiry", testEphemeralExpiry},
		{"ConcurrentEphemeral", testConcurrentEphemeral},
		{"EphemeralAcrossHandles", testEphemeralAcrossHandles},
		{"Runs", testRuns},
		{"RunClaims", testRunClaims},
		{"ConcurrentClaims", testConcurrentClaims},
		{"Revocations", testRevocations},
		{"ConcurrentRevocations", testConcurrentRevocations},
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

// testCountRuns: runs are counted once each, by collaboration and
// analysis, only when a key was released to them, and never the run asked
// about.
func testCountRuns(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	run := func(i int) string { return fmt.Sprintf("%032x", i) }
	for _, rec := range []store.AuditRecord{
		{Decision: store.DecisionReleased, Collaboration: "c", Analysis: "a", RunID: run(1)},
		{Decision: store.DecisionReleased, Collaboration: "c", Analysis: "a", RunID: run(1)}, // a second dataset of run 1
		{Decision: store.DecisionReleased, Collaboration: "c", Analysis: "a", RunID: run(2)},
		{Decision: store.DecisionRefused, Collaboration: "c", Analysis: "a", RunID: run(3)},
		{Decision: store.DecisionReleased, Collaboration: "c", Analysis: "b", RunID: run(4)},
		{Decision: store.DecisionReleased, Collaboration: "d", Analysis: "a", RunID: run(5)},
		{Decision: store.DecisionReleased, Resource: "r/t/x"}, // not a run
	} {
		rec.Reason, rec.Resource = "test", "r/t/x"
		if _, err := s.AppendAudit(ctx, &rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		collab, analysis, except string
		want                     int
	}{
		{"c", "a", "", 2}, {"c", "a", run(1), 1}, {"c", "a", run(3), 2}, {"c", "b", "", 1}, {"d", "a", "", 1}, {"e", "a", "", 0},
	} {
		if n, err := s.CountRuns(ctx, tc.collab, tc.analysis, tc.except); err != nil || n != tc.want {
			t.Errorf("CountRuns(%s, %s, except %.4s) = %d, %v; want %d", tc.collab, tc.analysis, tc.except, n, err, tc.want)
		}
	}
}

// testRunSpends: a run's ε on a resource is listed once, only for
// releases with an ε, by collaboration and resource.
func testRunSpends(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	run := func(i int) string { return fmt.Sprintf("%032x", i) }
	for _, rec := range []store.AuditRecord{
		{Decision: store.DecisionReleased, Collaboration: "c", Resource: "r/t/x", RunID: run(1), Epsilon: "0.5"},
		{Decision: store.DecisionReleased, Collaboration: "c", Resource: "r/t/x", RunID: run(1), Epsilon: "0.5"}, // a retry
		{Decision: store.DecisionReleased, Collaboration: "c", Resource: "r/t/x", RunID: run(2), Epsilon: "1/3"},
		{Decision: store.DecisionRefused, Collaboration: "c", Resource: "r/t/x", RunID: run(3), Epsilon: "1"},
		{Decision: store.DecisionReleased, Collaboration: "c", Resource: "r/t/x", RunID: run(4)}, // no privacy
		{Decision: store.DecisionReleased, Collaboration: "c", Resource: "r/t/y", RunID: run(5), Epsilon: "1"},
		{Decision: store.DecisionReleased, Collaboration: "d", Resource: "r/t/x", RunID: run(6), Epsilon: "1"},
	} {
		rec.Reason = "test"
		if _, err := s.AppendAudit(ctx, &rec); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.RunSpends(ctx, "c", "r/t/x")
	want := []store.RunSpend{{RunID: run(1), Epsilon: "0.5"}, {RunID: run(2), Epsilon: "1/3"}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("RunSpends(c, r/t/x) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.RunSpends(ctx, "e", "r/t/x"); err != nil || len(got) != 0 {
		t.Errorf("RunSpends(e) = %+v, %v", got, err)
	}
	recs, err := s.ListAudit(ctx, 0, 1)
	if err != nil || len(recs) != 1 || recs[0].Epsilon != "0.5" {
		t.Errorf("ListAudit does not return the ε: %+v, %v", recs, err)
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
			Collaboration: "collab-1", ManifestHash: strings.Repeat("ab", 32), Analysis: "an", RunID: strings.Repeat("0f", 16),
		}
		if i%2 == 0 {
			rec.Decision, rec.Reason, rec.Time = store.DecisionRefused, "bad \xff\x00 input", time.Time{}
			rec.Collaboration, rec.Analysis = "c\x00\xfe", ""
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
		first.TEE != "sim" || first.Measurement != "m" || first.Collaboration != "collab-1" || first.ManifestHash != strings.Repeat("ab", 32) ||
		first.Analysis != "an" || first.RunID != strings.Repeat("0f", 16) {
		t.Errorf("record 1 = %+v", first)
	}
	if got[1].Reason != "bad \uFFFD\uFFFD input" || got[1].Collaboration != "c\uFFFD\uFFFD" || got[1].Analysis != "" || got[1].Time.IsZero() || got[1].Decision != "refused" {
		t.Errorf("record 2 = %+v; want sanitised reason and collaboration, and a time", got[1])
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
	// An owner-API refusal is kept in the same trail.
	seq, err = s.AppendAudit(ctx, &store.AuditRecord{Decision: store.DecisionAdminRefused, Resource: "r/t/x", Requester: "admin:other"})
	if err != nil {
		t.Fatal(err)
	}
	if page, _ = s.ListAudit(ctx, seq-1, 1); len(page) != 1 || page[0].Decision != store.DecisionAdminRefused || page[0].Requester != "admin:other" {
		t.Errorf("admin refusal stored as %+v", page)
	}
	for _, d := range []string{"", "allowed", "Released", "Admin-Refused"} {
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

func testCollaborations(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	const id = "collab/ünï 1"
	if _, _, err := s.GetCollaboration(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetCollaboration(absent) = %v; want ErrNotFound", err)
	}
	file := func(id string, v int64) []byte { return fmt.Appendf(nil, "file %s v%d", id, v) }
	for v := int64(1); v <= 2; v++ {
		if err := s.PutCollaboration(ctx, id, file(id, v), v); err != nil {
			t.Fatalf("PutCollaboration(v%d): %v", v, err)
		}
	}
	check := func(s store.Store, id string, want int64) {
		t.Helper()
		got, v, err := s.GetCollaboration(ctx, id)
		if err != nil || v != want || !bytes.Equal(got, file(id, want)) {
			t.Errorf("GetCollaboration(%s) = %q, %d, %v; want version %d", id, got, v, err, want)
		}
	}
	check(s, id, 2)
	for _, v := range []int64{1, 2, 4} {
		if err := s.PutCollaboration(ctx, id, []byte("stale"), v); !errors.Is(err, store.ErrConflict) {
			t.Errorf("PutCollaboration(v%d after v2) = %v; want ErrConflict", v, err)
		}
	}
	// A version below 1 can never be stored: either error will do.
	for _, v := range []int64{0, -1} {
		if err := s.PutCollaboration(ctx, "never", []byte("x"), v); !errors.Is(err, store.ErrInvalid) && !errors.Is(err, store.ErrConflict) {
			t.Errorf("PutCollaboration(v%d) = %v; want ErrInvalid or ErrConflict", v, err)
		}
	}
	if err := s.PutCollaboration(ctx, "other", file("other", 1), 1); err != nil {
		t.Fatal(err)
	}
	check(s, "other", 1)
	check(s, id, 2)

	// Limits: the largest id and file are accepted, anything beyond is not.
	long := strings.Repeat("i", store.MaxCollaborationIDSize)
	if err := s.PutCollaboration(ctx, long, make([]byte, store.MaxCollaborationSize), 1); err != nil {
		t.Errorf("PutCollaboration(largest id and file) = %v", err)
	}
	for _, bad := range []string{"", long + "i", "a\x00b", "\xff"} {
		if err := s.PutCollaboration(ctx, bad, []byte("x"), 1); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutCollaboration(id %q) = %v; want ErrInvalid", bad, err)
		}
		if _, _, err := s.GetCollaboration(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("GetCollaboration(%q) = %v; want ErrInvalid", bad, err)
		}
	}
	for _, f := range [][]byte{nil, {}, make([]byte, store.MaxCollaborationSize+1)} {
		if err := s.PutCollaboration(ctx, "bad-file", f, 1); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutCollaboration(%d-byte file) = %v; want ErrInvalid", len(f), err)
		}
	}
	for _, id := range []string{"never", "bad-file"} {
		if _, _, err := s.GetCollaboration(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rejected writes stored collaboration %s: %v", id, err)
		}
	}

	// Every version survives a restart, and the next one follows on.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, "db")
	defer s.Close()
	check(s, id, 2)
	if err := s.PutCollaboration(ctx, id, file(id, 3), 3); err != nil {
		t.Fatal(err)
	}
	check(s, id, 3)
}

func testConcurrentCollaborations(t *testing.T, open Open) {
	ctx := context.Background()
	stores := replicas(t, open, 2)
	// Writers race for each version, first on one handle, then on two
	// (replicas): exactly one wins each race.
	for _, race := range []struct {
		id      string
		version int64
		handles int
	}{{"solo", 1, 1}, {"solo", 2, 1}, {"shared", 1, 2}, {"shared", 2, 2}, {"shared", 3, 2}} {
		const writers = 8
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []string
		)
		for w := range writers {
			s := stores[w%race.handles]
			wg.Go(func() {
				f := fmt.Sprintf("%s v%d by %d", race.id, race.version, w)
				err := s.PutCollaboration(ctx, race.id, []byte(f), race.version)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, f)
					mu.Unlock()
				case !errors.Is(err, store.ErrConflict):
					t.Errorf("PutCollaboration(%s v%d) = %v; want nil or ErrConflict", race.id, race.version, err)
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("%s v%d: %d writers won; want 1", race.id, race.version, len(winners))
		}
		for _, s := range stores {
			got, v, err := s.GetCollaboration(ctx, race.id)
			if err != nil || v != race.version || string(got) != winners[0] {
				t.Errorf("GetCollaboration(%s) = %q, %d, %v; want the winner %q", race.id, got, v, err, winners[0])
			}
		}
	}
}

// notFound checks that a Get or Take found nothing, without a driver error.
func notFound(t *testing.T, what string, value []byte, ok bool, err error) {
	t.Helper()
	if ok || value != nil || err != nil && !errors.Is(err, store.ErrInvalid) {
		t.Errorf("%s = %q, %v, %v; want nothing", what, value, ok, err)
	}
}

func testEphemeral(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	e := s.Ephemeral()
	exp := time.Now().Add(time.Minute)
	const key = "nonce/ünï"
	v, ok, err := e.Get(ctx, key)
	notFound(t, "Get(absent)", v, ok, err)
	if ok, err := e.Add(ctx, key, []byte("v1"), exp); err != nil || !ok {
		t.Fatalf("Add = %v, %v; want true", ok, err)
	}
	if ok, err := e.Add(ctx, key, []byte("v2"), exp.Add(time.Hour)); err != nil || ok {
		t.Errorf("Add(live key) = %v, %v; want false", ok, err)
	}
	if v, ok, err := e.Get(ctx, key); err != nil || !ok || string(v) != "v1" {
		t.Errorf("Get = %q, %v, %v; want v1", v, ok, err)
	}
	if v, ok, err := e.Get(ctx, key); err != nil || !ok || string(v) != "v1" {
		t.Errorf("second Get = %q, %v, %v; want v1 (Get does not remove)", v, ok, err)
	}
	if v, ok, err := e.Take(ctx, key); err != nil || !ok || string(v) != "v1" {
		t.Errorf("Take = %q, %v, %v; want v1", v, ok, err)
	}
	v, ok, err = e.Take(ctx, key)
	notFound(t, "second Take", v, ok, err)
	v, ok, err = e.Get(ctx, key)
	notFound(t, "Get after Take", v, ok, err)
	if ok, err := e.Add(ctx, key, []byte("v3"), exp); err != nil || !ok {
		t.Errorf("Add after Take = %v, %v; want true", ok, err)
	}

	// Empty and largest values, longest key.
	long := strings.Repeat("k", store.MaxEphemeralKeySize)
	big := bytes.Repeat([]byte{0, 0xff}, store.MaxEphemeralValueSize/2)
	for k, val := range map[string][]byte{"empty/nil": nil, "empty/zero": {}, long: big} {
		if ok, err := e.Add(ctx, k, val, exp); err != nil || !ok {
			t.Errorf("Add(%.20q, %d bytes) = %v, %v; want true", k, len(val), ok, err)
		}
		if v, ok, err := e.Get(ctx, k); err != nil || !ok || !bytes.Equal(v, val) {
			t.Errorf("Get(%.20q) = %d bytes, %v, %v; want %d bytes", k, len(v), ok, err, len(val))
		}
		if v, ok, err := e.Take(ctx, k); err != nil || !ok || !bytes.Equal(v, val) {
			t.Errorf("Take(%.20q) = %d bytes, %v, %v; want %d bytes", k, len(v), ok, err, len(val))
		}
	}

	for _, k := range []string{"", long + "k", "a\x00b", "\xff"} {
		if _, err := e.Add(ctx, k, []byte("v"), exp); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Add(key %.20q) = %v; want ErrInvalid", k, err)
		}
		v, ok, err := e.Get(ctx, k)
		notFound(t, fmt.Sprintf("Get(%.20q)", k), v, ok, err)
		v, ok, err = e.Take(ctx, k)
		notFound(t, fmt.Sprintf("Take(%.20q)", k), v, ok, err)
	}
	if _, err := e.Add(ctx, "big", make([]byte, store.MaxEphemeralValueSize+1), exp); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Add(oversized value) = %v; want ErrInvalid", err)
	}
	for _, at := range []time.Time{{}, time.Now().Add(-time.Second), time.Now()} {
		if _, err := e.Add(ctx, "past", []byte("v"), at); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Add(expires %v) = %v; want ErrInvalid", at, err)
		}
	}
	for _, k := range []string{"big", "past"} {
		v, ok, err := e.Get(ctx, k)
		notFound(t, "Get(rejected "+k+")", v, ok, err)
	}
}

func testEphemeralExpiry(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	e := s.Ephemeral()
	exp := time.Now().Add(300 * time.Millisecond)
	for _, k := range []string{"short/a", "short/b"} {
		if ok, err := e.Add(ctx, k, []byte("old"), exp); err != nil || !ok {
			t.Fatalf("Add(%s) = %v, %v", k, ok, err)
		}
	}
	if ok, err := e.Add(ctx, "long", []byte("v"), time.Now().Add(time.Hour)); err != nil || !ok {
		t.Fatalf("Add(long) = %v, %v", ok, err)
	}
	if v, ok, err := e.Get(ctx, "short/a"); err != nil || !ok || string(v) != "old" {
		t.Fatalf("Get before expiry = %q, %v, %v", v, ok, err)
	}
	time.Sleep(time.Until(exp) + 200*time.Millisecond)
	v, ok, err := e.Get(ctx, "short/a")
	notFound(t, "Get(expired)", v, ok, err)
	v, ok, err = e.Take(ctx, "short/b")
	notFound(t, "Take(expired)", v, ok, err)
	// An expired record does not hold its key.
	for _, k := range []string{"short/a", "short/b"} {
		if ok, err := e.Add(ctx, k, []byte("new"), time.Now().Add(time.Minute)); err != nil || !ok {
			t.Errorf("Add(%s over an expired record) = %v, %v; want true", k, ok, err)
		}
		if v, ok, err := e.Take(ctx, k); err != nil || !ok || string(v) != "new" {
			t.Errorf("Take(%s) = %q, %v, %v; want new", k, v, ok, err)
		}
	}
	if v, ok, err := e.Get(ctx, "long"); err != nil || !ok || string(v) != "v" {
		t.Errorf("Get(long) = %q, %v, %v; want v", v, ok, err)
	}
}

func testConcurrentEphemeral(t *testing.T, open Open) {
	ctx := context.Background()
	stores := replicas(t, open, 2)
	exp := time.Now().Add(time.Minute)
	const workers = 16
	// race runs fn on workers goroutines, half on each handle, and returns
	// how many reported ok.
	race := func(fn func(e store.Ephemeral, w int) (bool, error)) int {
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			won int
		)
		for w := range workers {
			e := stores[w%2].Ephemeral()
			wg.Go(func() {
				ok, err := fn(e, w)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return won
	}
	for i := range 5 {
		key := fmt.Sprintf("nonce/%d", i)
		if won := race(func(e store.Ephemeral, w int) (bool, error) {
			return e.Add(ctx, key, fmt.Appendf(nil, "by %d", w), exp)
		}); won != 1 {
			t.Errorf("%s: %d concurrent Adds stored; want 1", key, won)
		}
		want, ok, err := stores[0].Ephemeral().Get(ctx, key)
		if err != nil || !ok {
			t.Fatalf("Get(%s) = %v, %v", key, ok, err)
		}
		if won := race(func(e store.Ephemeral, w int) (bool, error) {
			v, ok, err := e.Take(ctx, key)
			if ok && !bytes.Equal(v, want) {
				t.Errorf("Take(%s) = %q; want %q", key, v, want)
			}
			return ok, err
		}); won != 1 {
			t.Errorf("%s: %d concurrent Takes succeeded; want 1", key, won)
		}
	}
	// Adds and Takes of distinct keys, interleaved, all succeed.
	if won := race(func(e store.Ephemeral, w int) (bool, error) {
		key := fmt.Sprintf("session/%d", w)
		if ok, err := e.Add(ctx, key, []byte(key), exp); err != nil || !ok {
			return false, fmt.Errorf("Add(%s) = %v, %v", key, ok, err)
		}
		v, ok, err := e.Take(ctx, key)
		if err == nil && ok && string(v) != key {
			err = fmt.Errorf("Take(%s) = %q", key, v)
		}
		return ok, err
	}); won != workers {
		t.Errorf("%d of %d Add-then-Take succeeded", won, workers)
	}
}

func testEphemeralAcrossHandles(t *testing.T, open Open) {
	ctx := context.Background()
	stores := replicas(t, open, 2)
	a, b := stores[0].Ephemeral(), stores[1].Ephemeral()
	exp := time.Now().Add(time.Minute)
	if ok, err := a.Add(ctx, "kbs-session/1", []byte("s1"), exp); err != nil || !ok {
		t.Fatalf("A.Add = %v, %v", ok, err)
	}
	if ok, err := b.Add(ctx, "kbs-session/1", []byte("other"), exp); err != nil || ok {
		t.Errorf("B.Add(key live on A) = %v, %v; want false", ok, err)
	}
	if v, ok, err := b.Get(ctx, "kbs-session/1"); err != nil || !ok || string(v) != "s1" {
		t.Errorf("B.Get = %q, %v, %v; want s1", v, ok, err)
	}
	if v, ok, err := b.Take(ctx, "kbs-session/1"); err != nil || !ok || string(v) != "s1" {
		t.Errorf("B.Take = %q, %v, %v; want s1", v, ok, err)
	}
	v, ok, err := a.Get(ctx, "kbs-session/1")
	notFound(t, "A.Get after B.Take", v, ok, err)
	v, ok, err = a.Take(ctx, "kbs-session/1")
	notFound(t, "A.Take after B.Take", v, ok, err)
	if ok, err := a.Add(ctx, "kbs-session/1", []byte("s2"), exp); err != nil || !ok {
		t.Errorf("A.Add after B.Take = %v, %v; want true", ok, err)
	}
}

// BoundedEphemeral is a backend's view of a database opened with
// MaxEphemeral 3, for EphemeralBound.
type BoundedEphemeral struct {
	// Open returns a new handle on the database (a restart, or another
	// replica). The first one opened is the one Purge and Count act on.
	Open func() store.Store
	// InsertExpired writes n expired records behind the handles' backs.
	InsertExpired func(n int)
	// Purge runs the first handle's purge (delete expired, recount) now.
	Purge func()
	// Count returns how many records the table holds, expired or not.
	Count func() int
}

// EphemeralBound checks the bound on live ephemeral records: Add fails
// with ErrFull at the bound, a Take makes room, a new handle counts the
// table when it opens, and expired records count until a purge deletes
// them and recounts, however many there are.
func EphemeralBound(t *testing.T, b BoundedEphemeral) {
	ctx := context.Background()
	e := b.Open().Ephemeral()
	add := func(e store.Ephemeral, key string, expires time.Time) error {
		ok, err := e.Add(ctx, key, []byte("v"), expires)
		if err == nil && !ok {
			err = fmt.Errorf("Add(%s) stored nothing", key)
		}
		return err
	}
	short, long := time.Now().Add(300*time.Millisecond), time.Now().Add(time.Hour)
	for _, k := range []string{"k0", "k1", "k2"} {
		if err := add(e, k, short); err != nil {
			t.Fatal(err)
		}
	}
	if err := add(e, "k3", long); !errors.Is(err, store.ErrFull) {
		t.Fatalf("fourth Add = %v; want ErrFull", err)
	}
	if _, ok, err := e.Take(ctx, "k0"); err != nil || !ok {
		t.Fatalf("Take = %v, %v", ok, err)
	}
	if err := add(e, "k3", long); err != nil {
		t.Fatalf("Add after Take = %v", err)
	}
	if err := add(b.Open().Ephemeral(), "k4", long); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Add on a new handle = %v; want ErrFull", err)
	}
	b.InsertExpired(2500)
	time.Sleep(time.Until(short) + 100*time.Millisecond)
	if err := add(e, "k4", long); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Add before the purge = %v; want ErrFull", err)
	}
	b.Purge()
	if n := b.Count(); n != 1 {
		t.Errorf("%d records after the purge; want 1 (k3)", n)
	}
	for _, k := range []string{"k4", "k5"} {
		if err := add(e, k, long); err != nil {
			t.Fatalf("Add after the purge = %v", err)
		}
	}
	if err := add(e, "k6", long); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Add beyond the bound after the purge = %v; want ErrFull", err)
	}
}

// OldAudit are the audit records an upgrade test writes into a database
// created by an earlier schema, before the audit trail named clean-room
// runs: the backend's test inserts them with that schema's SQL (Seq 1 and
// 2), opens the store, which migrates it, and calls CheckUpgradedAudit.
var OldAudit = []store.AuditRecord{
	{Seq: 1, Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Decision: store.DecisionReleased, Reason: "policy allowed",
		Resource: "owner/key/one", TokenDigest: "aa", PolicyID: "default@1", Requester: "127.0.0.1", TEE: "sim", Measurement: "m"},
	{Seq: 2, Time: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Decision: store.DecisionRefused, Reason: "no session or token",
		Resource: "owner/key/two", Requester: "127.0.0.1"},
}

// CheckUpgradedAudit checks a store opened on a database of an earlier
// schema holding OldAudit: the records are kept, with no run named, and
// the migrated table records runs.
func CheckUpgradedAudit(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	got, err := s.ListAudit(ctx, 0, 0)
	if err != nil {
		t.Fatalf("ListAudit after the upgrade: %v", err)
	}
	if fmt.Sprint(got) != fmt.Sprint(OldAudit) {
		t.Errorf("records after the upgrade:\n got %+v\nwant %+v", got, OldAudit)
	}
	rec := &store.AuditRecord{Decision: store.DecisionReleased, Resource: "owner/key/one",
		Collaboration: "c", ManifestHash: strings.Repeat("ab", 32), Analysis: "a", RunID: strings.Repeat("0f", 16)}
	seq, err := s.AppendAudit(ctx, rec)
	if err != nil || seq != int64(len(OldAudit))+1 {
		t.Fatalf("AppendAudit after the upgrade = %d, %v; want %d", seq, err, len(OldAudit)+1)
	}
	page, err := s.ListAudit(ctx, seq-1, 1)
	if err != nil || len(page) != 1 || page[0].Collaboration != "c" || page[0].ManifestHash != rec.ManifestHash ||
		page[0].Analysis != "a" || page[0].RunID != rec.RunID {
		t.Errorf("record appended after the upgrade = %+v, %v", page, err)
	}
}
