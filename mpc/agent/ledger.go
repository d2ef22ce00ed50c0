package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/kura-cc/kura/privacy"
)

// Entry is one run an agent took part in, as its ledger records it.
type Entry struct {
	Collaboration string    `json:"collaboration"`
	Analysis      string    `json:"analysis"`
	RunID         string    `json:"run_id"`
	Session       string    `json:"session"`
	Dataset       string    `json:"dataset"`
	Epsilon       string    `json:"epsilon,omitempty"`
	At            time.Time `json:"at"`
}

// Ledger is an agent's durable record of the runs it took part in: it
// refuses a replayed run or session, counts runs against max_runs and sums
// ε against a dataset's privacy budget, deciding and recording one run at
// a time. It is an append-only file of JSON lines, synced before a run is
// accepted, and locked so that one process uses it.
type Ledger struct {
	mu      sync.Mutex
	f       *os.File
	entries []Entry
}

// OpenLedger opens (creating, mode 0600) the ledger at path and locks it.
func OpenLedger(path string) (*Ledger, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mpc ledger: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("mpc ledger %s: in use by another process: %w", path, err)
	}
	entries, err := readEntries(f, path, false)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Ledger{f: f, entries: entries}, nil
}

// ReadLedger reads a snapshot of the ledger at path without locking it,
// while its agent may be running: for showing what was spent. A last line
// being written is left out. The snapshot refuses Reserve.
func ReadLedger(path string) (*Ledger, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mpc ledger: %w", err)
	}
	defer f.Close()
	entries, err := readEntries(f, path, true)
	if err != nil {
		return nil, err
	}
	return &Ledger{entries: entries}, nil
}

// readEntries reads the ledger's JSON lines; with partialTail, a last line
// without its newline is ignored.
func readEntries(f *os.File, path string, partialTail bool) ([]Entry, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxLedger+1))
	if err != nil {
		return nil, fmt.Errorf("mpc ledger %s: %w", path, err)
	}
	if len(data) > maxLedger {
		return nil, fmt.Errorf("mpc ledger %s: larger than %d bytes: start a new one", path, maxLedger)
	}
	lines := bytes.Split(data, []byte("\n"))
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	if len(last) > 0 && !partialTail {
		return nil, fmt.Errorf("mpc ledger %s: the last line is cut short (a crash while writing?): remove it to go on", path)
	}
	var out []Entry
	for n, line := range lines {
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, fmt.Errorf("mpc ledger %s line %d: %w", path, n+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// maxLedger bounds a ledger file: about a million runs.
const maxLedger = 256 << 20

// Close releases the ledger.
func (l *Ledger) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// Spent returns the ε the ledger recorded for a dataset of a
// collaboration, and the number of runs that spent it.
func (l *Ledger) Spent(collaboration, dataset string) (privacy.Epsilon, int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.spent(collaboration, dataset)
}

func (l *Ledger) spent(collaboration, dataset string) (privacy.Epsilon, int, error) {
	var sum privacy.Epsilon
	runs := 0
	for _, e := range l.entries {
		if e.Collaboration != collaboration || e.Dataset != dataset || e.Epsilon == "" {
			continue
		}
		eps, err := privacy.ParseEpsilon(e.Epsilon)
		if err != nil {
			return sum, 0, fmt.Errorf("mpc ledger: run %s: %w", e.RunID, err)
		}
		sum = sum.Add(eps)
		runs++
	}
	return sum, runs, nil
}

// Limits are what Reserve enforces besides replay.
type Limits struct {
	// MaxRuns is the analysis's max_runs (0: none).
	MaxRuns int
	// Budget is the dataset's privacy budget, when it has one; Epsilon is
	// what the run spends.
	Budget  *privacy.Epsilon
	Epsilon *privacy.Epsilon
}

// Reserve records e if it is a new run and session within the limits, and
// syncs it to disk before returning; otherwise it records nothing and
// returns ErrReplay, ErrRefused (max_runs) or ErrBudget with the numbers.
// A run that fails after Reserve stays recorded: the ledger errs towards
// spending.
func (l *Ledger) Reserve(e Entry, lim Limits) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("%w: a ledger snapshot records nothing", ErrAgent)
	}
	runs := 0
	for _, x := range l.entries {
		if x.RunID == e.RunID || x.Session == e.Session {
			return fmt.Errorf("%w: run %s (session %.16s…) was seen on %s", ErrReplay, e.RunID, e.Session, x.At.UTC().Format(time.RFC3339))
		}
		if x.Collaboration == e.Collaboration && x.Analysis == e.Analysis {
			runs++
		}
	}
	if lim.MaxRuns > 0 && runs >= lim.MaxRuns {
		return fmt.Errorf("%w: analysis %q has had its max_runs of %d runs", ErrRefused, e.Analysis, lim.MaxRuns)
	}
	if lim.Budget != nil {
		spent, n, err := l.spent(e.Collaboration, e.Dataset)
		if err != nil {
			return err
		}
		if spent.Add(*lim.Epsilon).Cmp(*lim.Budget) > 0 {
			return fmt.Errorf("%w: dataset %q has spent ε %s of its budget %s in %d runs; this run needs %s", ErrBudget, e.Dataset, spent, *lim.Budget, n, *lim.Epsilon)
		}
		e.Epsilon = lim.Epsilon.String()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("mpc ledger: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("mpc ledger: %w", err)
	}
	l.entries = append(l.entries, e)
	return nil
}
