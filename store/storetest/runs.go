package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/store"
)

// runID returns the run id numbered i: 32 lowercase hex characters.
func runID(i int) string { return fmt.Sprintf("%032x", i) }

// fingerprint is a party's card fingerprint.
var fingerprint = strings.Repeat("ab", 32)

// t0 is the tests' clock: claims and leases are computed from it, never
// from the wall clock.
var t0 = time.Date(2025, 5, 6, 7, 8, 9, 123456000, time.UTC)

func newRun(i int, collaboration string, at time.Time) *store.Run {
	return &store.Run{ID: runID(i), Collaboration: collaboration, Analysis: "count", SubmittedBy: fingerprint, SubmittedAt: at}
}

func mustPutRun(t *testing.T, s store.Store, r *store.Run) {
	t.Helper()
	if err := s.PutRun(context.Background(), r); err != nil {
		t.Fatalf("PutRun(%s): %v", r.ID, err)
	}
}

func mustGetRun(t *testing.T, s store.Store, id string) *store.Run {
	t.Helper()
	r, err := s.GetRun(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRun(%s): %v", id, err)
	}
	return r
}

func ids(runs []store.Run) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.ID)
	}
	return out
}

func recent(at time.Time) bool {
	return at.Location() == time.UTC && at.Nanosecond()%1000 == 0 &&
		!at.Before(time.Now().Add(-time.Minute)) && !at.After(time.Now().Add(time.Minute))
}

func testRuns(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	if _, err := s.GetRun(ctx, runID(1)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetRun(absent) = %v; want ErrNotFound", err)
	}
	// What a caller sets beyond the submission is ignored: a run starts
	// queued.
	first := newRun(1, "collab-a", t0.In(time.FixedZone("X", 3600)).Add(789))
	first.State, first.Worker, first.LeaseUntil, first.Attempts = store.RunCompleted, "w", t0, 7
	first.Result, first.Receipt, first.Error, first.UpdatedAt = fingerprint, fingerprint, "no", t0
	mustPutRun(t, s, first)
	got := mustGetRun(t, s, runID(1))
	want := store.Run{ID: runID(1), Collaboration: "collab-a", Analysis: "count", SubmittedBy: fingerprint, SubmittedAt: t0, State: store.RunQueued}
	if upd := got.UpdatedAt; !recent(upd) {
		t.Errorf("UpdatedAt = %v; want now, UTC, microseconds", upd)
	}
	got.UpdatedAt = time.Time{}
	if *got != want || got.SubmittedAt.Location() != time.UTC {
		t.Errorf("GetRun = %+v\nwant %+v", got, want)
	}
	if first.State != store.RunCompleted || first.Attempts != 7 {
		t.Errorf("PutRun modified the caller's run: %+v", first)
	}
	// A zero SubmittedAt means now.
	mustPutRun(t, s, newRun(2, "collab-b", time.Time{}))
	if r := mustGetRun(t, s, runID(2)); !recent(r.SubmittedAt) || !r.SubmittedAt.Equal(r.UpdatedAt) {
		t.Errorf("SubmittedAt = %v, UpdatedAt %v; want now, both", r.SubmittedAt, r.UpdatedAt)
	}
	for i, c := range map[int]string{3: "collab-a", 4: "collab-b", 5: "collab-a"} {
		mustPutRun(t, s, newRun(i, c, t0.Add(time.Duration(i)*time.Second)))
	}
	mustPutRun(t, s, newRun(0xabc, "collab-a", t0.Add(5*time.Second))) // same time as 5: id breaks the tie

	// A duplicate id conflicts, whatever the rest says, and changes nothing.
	dup := newRun(1, "collab-b", t0.Add(time.Hour))
	if err := s.PutRun(ctx, dup); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutRun(duplicate id) = %v; want ErrConflict", err)
	}
	if r := mustGetRun(t, s, runID(1)); r.Collaboration != "collab-a" || !r.SubmittedAt.Equal(t0) {
		t.Errorf("duplicate PutRun overwrote the run: %+v", r)
	}

	// Newest first, then by id; one collaboration's runs only when asked.
	for _, tc := range []struct {
		collaboration string
		limit         int
		want          []int
	}{
		{"", 0, []int{2, 0xabc, 5, 4, 3, 1}},
		{"", -1, []int{2, 0xabc, 5, 4, 3, 1}},
		{"", 3, []int{2, 0xabc, 5}},
		{"", 1 << 30, []int{2, 0xabc, 5, 4, 3, 1}},
		{"collab-a", 0, []int{0xabc, 5, 3, 1}},
		{"collab-a", 2, []int{0xabc, 5}},
		{"collab-b", 0, []int{2, 4}},
		{"collab-c", 0, nil},
		{"collab", 0, nil},
	} {
		runs, err := s.ListRuns(ctx, tc.collaboration, tc.limit)
		var want []string
		for _, i := range tc.want {
			want = append(want, runID(i))
		}
		if err != nil || fmt.Sprint(ids(runs)) != fmt.Sprint(want) {
			t.Errorf("ListRuns(%q, %d) = %v, %v; want %v", tc.collaboration, tc.limit, ids(runs), err, want)
		}
		for _, r := range runs {
			if tc.collaboration != "" && r.Collaboration != tc.collaboration {
				t.Errorf("ListRuns(%q) returned a run of %q", tc.collaboration, r.Collaboration)
			}
		}
	}
	if runs, err := s.ListRuns(ctx, "", 0); err != nil || len(runs) != 6 || *mustGetRun(t, s, runID(1)) != runs[5] {
		t.Errorf("ListRuns does not return what GetRun does: %+v, %v", runs, err)
	}
	for _, bad := range []string{strings.Repeat("c", store.MaxCollaborationIDSize+1), "a\x00b", "\xff"} {
		if _, err := s.ListRuns(ctx, bad, 0); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("ListRuns(%q) = %v; want ErrInvalid", bad, err)
		}
	}

	// Bad fields are refused, and nothing is stored.
	long := strings.Repeat("i", store.MaxCollaborationIDSize)
	ok := newRun(100, long, t0)
	ok.Analysis = strings.Repeat("a", store.MaxAnalysisIDSize)
	mustPutRun(t, s, ok)
	for name, edit := range map[string]func(r *store.Run){
		"short id":                 func(r *store.Run) { r.ID = r.ID[1:] },
		"long id":                  func(r *store.Run) { r.ID += "0" },
		"uppercase id":             func(r *store.Run) { r.ID = strings.ToUpper(runID(0xabc)) },
		"non-hex id":               func(r *store.Run) { r.ID = strings.Repeat("g", 32) },
		"no collaboration":         func(r *store.Run) { r.Collaboration = "" },
		"long collaboration":       func(r *store.Run) { r.Collaboration = long + "i" },
		"NUL in collaboration":     func(r *store.Run) { r.Collaboration = "a\x00b" },
		"no analysis":              func(r *store.Run) { r.Analysis = "" },
		"long analysis":            func(r *store.Run) { r.Analysis = strings.Repeat("a", store.MaxAnalysisIDSize+1) },
		"invalid UTF-8 analysis":   func(r *store.Run) { r.Analysis = "\xff" },
		"no submitter":             func(r *store.Run) { r.SubmittedBy = "" },
		"short submitter":          func(r *store.Run) { r.SubmittedBy = fingerprint[2:] },
		"uppercase submitter":      func(r *store.Run) { r.SubmittedBy = strings.ToUpper(fingerprint) },
		"non-hex submitter":        func(r *store.Run) { r.SubmittedBy = strings.Repeat("z", 64) },
		"submitter with a newline": func(r *store.Run) { r.SubmittedBy = fingerprint[1:] + "\n" },
	} {
		r := newRun(200, "collab-a", t0)
		edit(r)
		if err := s.PutRun(ctx, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutRun(%s) = %v; want ErrInvalid", name, err)
		}
	}
	if err := s.PutRun(ctx, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("PutRun(nil) = %v; want ErrInvalid", err)
	}
	if runs, err := s.ListRuns(ctx, "", 0); err != nil || len(runs) != 7 {
		t.Errorf("after refused writes ListRuns = %v, %v; want 7 runs", ids(runs), err)
	}
	for _, bad := range []string{"", "x", strings.ToUpper(runID(0xabc)), runID(1) + "0", " " + runID(1)[1:]} {
		if _, err := s.GetRun(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetRun(%q) = %v; want ErrNotFound", bad, err)
		}
	}

	// Runs survive a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, "db")
	defer s.Close()
	if r := mustGetRun(t, s, runID(3)); r.Collaboration != "collab-a" || !r.SubmittedAt.Equal(t0.Add(3*time.Second)) || r.State != store.RunQueued {
		t.Errorf("after reopen GetRun = %+v", r)
	}
	other := open(t, "other")
	defer other.Close()
	if _, err := other.GetRun(ctx, runID(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("database %q sees %q's runs: %v", "other", "db", err)
	}
}

func testRunClaims(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	defer s.Close()
	const lease = time.Minute
	claim := func(worker string, now time.Time, maxAttempts int) (*store.Run, error) {
		t.Helper()
		return s.ClaimRun(ctx, worker, now, lease, maxAttempts)
	}
	mustClaim := func(worker string, now time.Time, want string, attempts int) *store.Run {
		t.Helper()
		r, err := claim(worker, now, 0)
		if err != nil {
			t.Fatalf("ClaimRun(%s) = %v; want run %s", worker, err, want)
		}
		wantLease := now.Add(lease).Truncate(time.Microsecond)
		if r.ID != want || r.State != store.RunRunning || r.Worker != worker || !r.LeaseUntil.Equal(wantLease) ||
			r.Attempts != attempts || !r.UpdatedAt.Equal(now.Truncate(time.Microsecond)) {
			t.Fatalf("ClaimRun(%s) = %+v; want run %s held until %v, attempt %d", worker, r, want, wantLease, attempts)
		}
		if got := mustGetRun(t, s, want); *got != *r {
			t.Fatalf("GetRun after the claim = %+v; ClaimRun returned %+v", got, r)
		}
		return r
	}
	if _, err := claim("w1", t0, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimRun(empty queue) = %v; want ErrNotFound", err)
	}
	for name, call := range map[string]func() error{
		"no worker": func() error { _, err := s.ClaimRun(ctx, "", t0, lease, 0); return err },
		"long worker": func() error {
			_, err := s.ClaimRun(ctx, strings.Repeat("w", store.MaxWorkerNameSize+1), t0, lease, 0)
			return err
		},
		"NUL in worker":   func() error { _, err := s.ClaimRun(ctx, "w\x00", t0, lease, 0); return err },
		"zero lease":      func() error { _, err := s.ClaimRun(ctx, "w1", t0, 0, 0); return err },
		"negative lease":  func() error { _, err := s.ClaimRun(ctx, "w1", t0, -lease, 0); return err },
		"renew no worker": func() error { return s.RenewRun(ctx, runID(1), "", t0) },
		"renew zero time": func() error { return s.RenewRun(ctx, runID(1), "w1", time.Time{}) },
		"finish no worker": func() error {
			return s.FinishRun(ctx, runID(1), "", store.RunFailed, "", "", "")
		},
	} {
		if err := call(); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: %v; want ErrInvalid", name, err)
		}
	}

	// Oldest first; runs submitted together go by id.
	mustPutRun(t, s, newRun(3, "c", t0.Add(-time.Second)))
	mustPutRun(t, s, newRun(2, "c", t0.Add(-2*time.Second)))
	mustPutRun(t, s, newRun(1, "c", t0.Add(-time.Second)))
	a := mustClaim("w1", t0, runID(2), 1)
	mustClaim("w2", t0, runID(1), 1)
	mustClaim("w3", t0, runID(3), 1)
	if r, err := claim("w4", t0.Add(lease), 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimRun(every run leased) = %+v, %v; want ErrNotFound", r, err)
	}

	// Only the holder renews or finishes.
	later := t0.Add(time.Hour)
	for id, w := range map[string]string{runID(1): "w2", runID(3): "w3"} {
		if err := s.RenewRun(ctx, id, w, later); err != nil {
			t.Fatalf("RenewRun(%s, %s) = %v", id, w, err)
		}
		if r := mustGetRun(t, s, id); !r.LeaseUntil.Equal(later) || r.State != store.RunRunning || r.Worker != w || !recent(r.UpdatedAt) {
			t.Errorf("after RenewRun: %+v", r)
		}
	}
	for _, w := range []string{"w2", "w1 "} {
		if err := s.RenewRun(ctx, a.ID, w, later); !errors.Is(err, store.ErrConflict) {
			t.Errorf("RenewRun(%s's run by %q) = %v; want ErrConflict", a.Worker, w, err)
		}
		if err := s.FinishRun(ctx, a.ID, w, store.RunFailed, "", "", "x"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("FinishRun(%s's run by %q) = %v; want ErrConflict", a.Worker, w, err)
		}
	}
	for _, id := range []string{runID(99), "nope", strings.ToUpper(runID(0xabc))} {
		if err := s.RenewRun(ctx, id, "w1", later); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RenewRun(%q) = %v; want ErrNotFound", id, err)
		}
		if err := s.FinishRun(ctx, id, "w1", store.RunFailed, "", "", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("FinishRun(%q) = %v; want ErrNotFound", id, err)
		}
	}

	// A lease that lapses (LeaseUntil before now) lets another worker
	// take the run over; the first can then neither renew nor finish it.
	if r, err := claim("w4", a.LeaseUntil, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimRun(at the lease's last instant) = %+v, %v; want ErrNotFound", r, err)
	}
	lapsed := a.LeaseUntil.Add(time.Microsecond)
	mustClaim("w4", lapsed, a.ID, 2)
	if err := s.RenewRun(ctx, a.ID, "w1", later); !errors.Is(err, store.ErrConflict) {
		t.Errorf("RenewRun(by the worker taken over) = %v; want ErrConflict", err)
	}
	if err := s.FinishRun(ctx, a.ID, "w1", store.RunCompleted, fingerprint, "", ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishRun(by the worker taken over) = %v; want ErrConflict", err)
	}
	if r, err := claim("w5", lapsed, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimRun(every lease live) = %+v, %v; want ErrNotFound", r, err)
	}

	// Finishing: bad outcomes are refused and change nothing.
	result, receipt := strings.Repeat("0f", 32), strings.Repeat("e1", 32)
	for name, f := range map[string][4]string{
		"unknown state":              {"done", result, "", ""},
		"queued":                     {store.RunQueued, "", "", ""},
		"running":                    {store.RunRunning, "", "", ""},
		"completed without a result": {store.RunCompleted, "", receipt, ""},
		"short result":               {store.RunCompleted, result[1:], "", ""},
		"uppercase result":           {store.RunCompleted, strings.ToUpper(result), "", ""},
		"completed with an error":    {store.RunCompleted, result, "", "oops"},
		"bad receipt":                {store.RunCompleted, result, "receipt", ""},
		"failed with a result":       {store.RunFailed, result, "", "oops"},
		"failed, bad receipt":        {store.RunFailed, "", receipt + "0", "oops"},
	} {
		if err := s.FinishRun(ctx, runID(1), "w2", f[0], f[1], f[2], f[3]); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("FinishRun(%s) = %v; want ErrInvalid", name, err)
		}
	}
	if r := mustGetRun(t, s, runID(1)); r.State != store.RunRunning || r.Result != "" {
		t.Fatalf("refused finishes changed the run: %+v", r)
	}
	if err := s.FinishRun(ctx, runID(1), "w2", store.RunCompleted, result, receipt, ""); err != nil {
		t.Fatalf("FinishRun(completed) = %v", err)
	}
	done := mustGetRun(t, s, runID(1))
	if done.State != store.RunCompleted || done.Result != result || done.Receipt != receipt || done.Error != "" ||
		!done.LeaseUntil.IsZero() || done.Worker != "w2" || done.Attempts != 1 || !recent(done.UpdatedAt) {
		t.Errorf("completed run = %+v", done)
	}
	// The error text is kept as audit text is: made valid, cut short.
	long := "bad\x00\xff" + strings.Repeat("é", store.MaxAuditFieldSize)
	if err := s.FinishRun(ctx, runID(3), "w3", store.RunFailed, "", receipt, long); err != nil {
		t.Fatalf("FinishRun(failed) = %v", err)
	}
	failed := mustGetRun(t, s, runID(3))
	if failed.State != store.RunFailed || failed.Result != "" || failed.Receipt != receipt || !failed.LeaseUntil.IsZero() ||
		!strings.HasPrefix(failed.Error, "bad\uFFFD\uFFFDéé") || len(failed.Error) > store.MaxAuditFieldSize || len(failed.Error) < store.MaxAuditFieldSize-1 {
		t.Errorf("failed run = %+v (error of %d bytes)", failed, len(failed.Error))
	}
	// A finished run is nobody's to renew, finish or claim.
	for _, r := range []*store.Run{done, failed} {
		if err := s.RenewRun(ctx, r.ID, r.Worker, later); !errors.Is(err, store.ErrConflict) {
			t.Errorf("RenewRun(%s run) = %v; want ErrConflict", r.State, err)
		}
		if err := s.FinishRun(ctx, r.ID, r.Worker, store.RunFailed, "", "", ""); !errors.Is(err, store.ErrConflict) {
			t.Errorf("FinishRun(%s run) = %v; want ErrConflict", r.State, err)
		}
	}
	if r, err := claim("w5", later.Add(time.Hour), 0); err != nil || r.ID != a.ID || r.Attempts != 3 {
		t.Fatalf("ClaimRun(after the finishes) = %+v, %v; want only %s, attempt 3", r, err, a.ID)
	}
	if r, err := claim("w5", later.Add(time.Hour), 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimRun(finished runs only) = %+v, %v; want ErrNotFound", r, err)
	}

	// Out of attempts (the default: 3), a run fails instead, and the next
	// one is claimed in the same call.
	mustPutRun(t, s, newRun(4, "c", t0))
	end := later.Add(3 * time.Hour)
	r, err := claim("w6", end, 0)
	if err != nil || r.ID != runID(4) || r.Attempts != 1 {
		t.Fatalf("ClaimRun(past a run out of attempts) = %+v, %v; want %s", r, err, runID(4))
	}
	gaveUp := mustGetRun(t, s, a.ID)
	if gaveUp.State != store.RunFailed || gaveUp.Error != "gave up after 3 attempts" || gaveUp.Attempts != 3 || gaveUp.Worker != "w5" ||
		!gaveUp.LeaseUntil.IsZero() || !gaveUp.UpdatedAt.Equal(end) || gaveUp.Result != "" {
		t.Errorf("run out of attempts = %+v", gaveUp)
	}
	if err := s.FinishRun(ctx, a.ID, "w5", store.RunCompleted, result, "", ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FinishRun(run given up) = %v; want ErrConflict", err)
	}
	// An explicit bound; the give-up is stored even when nothing is left
	// to claim.
	if r, err := claim("w7", end.Add(time.Hour), 2); err != nil || r.ID != runID(4) || r.Attempts != 2 {
		t.Fatalf("ClaimRun(maxAttempts 2) = %+v, %v; want %s, attempt 2", r, err, runID(4))
	}
	if r, err := claim("w7", end.Add(2*time.Hour), 2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ClaimRun(maxAttempts 2, third claim) = %+v, %v; want ErrNotFound", r, err)
	}
	if r := mustGetRun(t, s, runID(4)); r.State != store.RunFailed || r.Error != "gave up after 2 attempts" {
		t.Errorf("run out of 2 attempts = %+v", r)
	}
}

func testConcurrentClaims(t *testing.T, open Open) {
	ctx := context.Background()
	stores := replicas(t, open, 2)
	const runs, workers = 40, 8
	for i := range runs {
		mustPutRun(t, stores[0], newRun(i, fmt.Sprintf("c%d", i%3), t0.Add(time.Duration(i%7)*time.Second)))
	}
	var (
		mu      sync.Mutex
		claimed = map[string]string{}
		wg      sync.WaitGroup
	)
	for w := range workers {
		s := stores[w%len(stores)]
		name := fmt.Sprintf("worker-%d", w)
		wg.Go(func() {
			for {
				r, err := s.ClaimRun(ctx, name, t0, time.Hour, 0)
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if prev, dup := claimed[r.ID]; dup {
					t.Errorf("run %s claimed by %s and %s", r.ID, prev, name)
				}
				claimed[r.ID] = name
				mu.Unlock()
				if r.Worker != name || r.Attempts != 1 {
					t.Errorf("%s claimed %+v", name, r)
				}
			}
		})
	}
	wg.Wait()
	if len(claimed) != runs {
		t.Fatalf("%d runs claimed; want %d", len(claimed), runs)
	}
	all, err := stores[1].ListRuns(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.State != store.RunRunning || r.Worker != claimed[r.ID] || r.Attempts != 1 {
			t.Errorf("run %s = %+v; claimed by %s", r.ID, r, claimed[r.ID])
		}
	}
}

// CheckUpgradedRuns checks that a store opened on a database of an
// earlier schema, before the run queue, queues and claims runs.
func CheckUpgradedRuns(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	mustPutRun(t, s, newRun(1, "c", t0))
	r, err := s.ClaimRun(ctx, "w", t0, time.Minute, 0)
	if err != nil || r.ID != runID(1) || r.State != store.RunRunning {
		t.Fatalf("ClaimRun after the upgrade = %+v, %v", r, err)
	}
	if err := s.FinishRun(ctx, r.ID, "w", store.RunCompleted, fingerprint, "", ""); err != nil {
		t.Fatalf("FinishRun after the upgrade: %v", err)
	}
}
