package agent_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/mpc/agent"
	"github.com/kura-cc/kura/privacy"
)

// TestLedgerBudgetUnderConcurrency: fifty runs racing for a budget of ten
// runs' ε get exactly ten acceptances; the rest are refused with the
// numbers, and the ledger read back agrees.
func TestLedgerBudgetUnderConcurrency(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	l, err := agent.OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	budget, _ := privacy.ParseEpsilon("1")
	eps, _ := privacy.ParseEpsilon("0.1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	var accepted []int
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Reserve(agent.Entry{Collaboration: "c", Analysis: "a", RunID: fmt.Sprintf("run%d", i), Session: fmt.Sprintf("s%d", i), Dataset: "flights", At: time.Now()},
				agent.Limits{Budget: &budget, Epsilon: &eps})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
				accepted = append(accepted, i)
			case errors.Is(err, agent.ErrBudget) && strings.Contains(err.Error(), "spent ε 1 of its budget 1 in 10 runs; this run needs 0.1"):
				refused++
			default:
				t.Errorf("run %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok != 10 || refused != 40 {
		t.Fatalf("%d accepted, %d refused; want 10 and 40", ok, refused)
	}
	if _, err := agent.OpenLedger(path); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("a second open of a ledger in use: %v", err)
	}
	l.Close()
	l, err = agent.OpenLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spent, runs, err := l.Spent("c", "flights")
	if err != nil || spent.String() != "1" || runs != 10 {
		t.Fatalf("read back: %s in %d runs, %v", spent, runs, err)
	}
	// A snapshot reads a ledger in use, and records nothing.
	snap, err := agent.ReadLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if spent, runs, _ := snap.Spent("c", "flights"); spent.String() != "1" || runs != 10 {
		t.Fatalf("snapshot: %s in %d runs", spent, runs)
	}
	if err := snap.Reserve(agent.Entry{RunID: "x", Session: "x"}, agent.Limits{}); err == nil {
		t.Fatal("a snapshot recorded a run")
	}
	// Replays and max_runs.
	if err := l.Reserve(agent.Entry{Collaboration: "c", Analysis: "a", RunID: fmt.Sprintf("run%d", accepted[0]), Session: "new"}, agent.Limits{}); !errors.Is(err, agent.ErrReplay) {
		t.Fatalf("replayed run id: %v", err)
	}
	if err := l.Reserve(agent.Entry{Collaboration: "c", Analysis: "a", RunID: "new", Session: fmt.Sprintf("s%d", accepted[1])}, agent.Limits{}); !errors.Is(err, agent.ErrReplay) {
		t.Fatalf("replayed session: %v", err)
	}
	if err := l.Reserve(agent.Entry{Collaboration: "c", Analysis: "a", RunID: "new", Session: "new"}, agent.Limits{MaxRuns: 10}); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "max_runs of 10") {
		t.Fatalf("past max_runs: %v", err)
	}
}

// TestLedgerCutShort: a last line cut short (a crash while writing) stops
// the agent, which would otherwise forget a spend, and a snapshot skips it.
func TestLedgerCutShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	line := `{"collaboration":"c","analysis":"a","run_id":"r1","session":"s1","dataset":"d","epsilon":"0.5","at":"2026-12-04T00:00:00Z"}`
	if err := os.WriteFile(path, []byte(line+"\n"+line[:40]), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := agent.OpenLedger(path); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("open: %v", err)
	}
	snap, err := agent.ReadLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if spent, runs, _ := snap.Spent("c", "d"); spent.String() != "0.5" || runs != 1 {
		t.Fatalf("snapshot: %s in %d runs", spent, runs)
	}
}
