package keybroker

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/kura-cc/kura/collab"
)

// private makes f's analysis private at eps, and the flights dataset's
// budget total.
func (f *runFixture) private(t *testing.T, eps, total string) []byte {
	t.Helper()
	return f.withVersion(t, func(m *collab.Manifest) {
		m.Analyses[0].Privacy = &collab.Privacy{Epsilon: eps}
		m.Datasets[0].OutputPolicy.PrivacyBudget = total
	})
}

// TestPrivacyBudget: each run charges its ε to the dataset once (a run
// asking again is the same run), the run that would overspend is refused
// with the numbers, and the spend is in the audit trail and at BudgetPath.
func TestPrivacyBudget(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	file := f.private(t, "1", "2.5")
	fetch := func(rc []byte) error {
		_, err := f.session(t, 0x11, rc).ResourceFor(ctx, flightsKey, file)
		return err
	}
	first := runContext(t, f.collab, "by_area")
	for i, rc := range [][]byte{first, first, runContext(t, f.collab, "by_area")} {
		if err := fetch(rc); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	if a := lastAudit(t, f.fixture); a.Decision != "released" || a.Epsilon != "1" {
		t.Errorf("release audited as %+v; want epsilon 1", a)
	}
	const want = `privacy budget of dataset "flights" exhausted: 2 of 2.5 spent by 2 run(s), this run needs 1`
	err := fetch(runContext(t, f.collab, "by_area"))
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || !strings.Contains(re.Detail, want) {
		t.Fatalf("a third run: %v; want 403 %q", err, want)
	}
	if a := lastAudit(t, f.fixture); a.Decision != "refused" || !strings.Contains(a.Reason, want) {
		t.Errorf("refusal audited as %+v", a)
	}
	if !strings.Contains(f.logs.String(), `"epsilon":"1"`) {
		t.Error("the release decisions' log lines do not carry the ε")
	}
	// The first run asking again is still the first run.
	if err := fetch(first); err != nil {
		t.Errorf("the first run again: %v", err)
	}

	got, err := (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Budget(ctx, "airline-carrier", flightsKey)
	if err != nil || got.Spent != "2" || got.Runs != 2 || got.Resource != flightsKey || got.Collaboration != "airline-carrier" {
		t.Errorf("Budget = %+v, %v; want 2 spent by 2 runs", got, err)
	}
	if got, err := (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Budget(ctx, "other", flightsKey); err != nil || got.Spent != "0" || got.Runs != 0 {
		t.Errorf("Budget(other) = %+v, %v", got, err)
	}
	for _, q := range []string{"", "?collaboration=x", "?collaboration=x&resource=a/b", "?resource=a/b/c"} {
		resp, err := f.srv.Client().Get(f.srv.URL + BudgetPath + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s%s = %d, want 400", BudgetPath, q, resp.StatusCode)
		}
	}
}

// TestPrivacyBudgetConcurrent: runs racing for the last ε of a budget do
// not both get the key.
func TestPrivacyBudgetConcurrent(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	file := f.private(t, "0.5", "1.2") // room for two runs
	const n = 8
	sessions := make([]*Session, n)
	for i := range sessions {
		sessions[i] = f.session(t, 0x11, runContext(t, f.collab, "by_area"))
	}
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		released, no403 int
	)
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.ResourceFor(ctx, flightsKey, file)
			mu.Lock()
			defer mu.Unlock()
			var re *RemoteError
			switch {
			case err == nil:
				released++
			case errors.As(err, &re) && re.Status == http.StatusForbidden && strings.Contains(re.Detail, "exhausted"):
			default:
				no403++
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if released != 2 || no403 != 0 {
		t.Errorf("%d of %d racing runs got the key; want exactly 2 (budget 1.2, 0.5 each)", released, n)
	}
	got, err := (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Budget(ctx, "airline-carrier", flightsKey)
	if err != nil || got.Spent != "1" || got.Runs != 2 {
		t.Errorf("Budget = %+v, %v", got, err)
	}
}

// TestMPCAnalysisNoKey: an analysis approved for the mpc backend never
// gets a dataset key.
func TestMPCAnalysisNoKey(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	file := f.withVersion(t, func(m *collab.Manifest) {
		m.Analyses[0].Backend = collab.BackendMPC
		m.Analyses[0].Aggregate.Measures = []collab.Measure{{Func: collab.AggCountDistinctIdentities, Dataset: "flights", As: "n"}}
	})
	_, err := f.session(t, 0x11, runContext(t, f.collab, "by_area")).ResourceFor(ctx, flightsKey, file)
	var re *RemoteError
	const want = `analysis "by_area" is approved for the mpc backend: its datasets' keys are never released`
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || !strings.Contains(re.Detail, want) {
		t.Fatalf("got %v; want 403 %q", err, want)
	}
	if a := lastAudit(t, f.fixture); a.Decision != "refused" || !strings.Contains(a.Reason, want) {
		t.Errorf("refusal audited as %+v", a)
	}
}
