package brokerlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/store"
)

// AuditSource is where a Follower reads decisions: a key broker's
// audit store.
type AuditSource interface {
	ListAudit(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error)
}

// Follower copies a key broker's audit trail into the log in the
// background, so that logging never holds up a release. The broker's store
// is the durable record — a decision is acknowledged only once stored — and
// the follower appends each stored release decision shortly after, as a
// key_release entry carrying its broker_seq; the owner API's refusals,
// kept in the same trail, are skipped (their broker_seq never appears). It
// keeps the last broker sequence number it logged in a cursor file and
// resumes from there after a restart or a crash, so every stored decision
// reaches the log at least once; a crash between an append and the cursor
// write logs a decision twice, with the same broker_seq, which readers
// count once.
//
// Record (keybroker.AuditSink) only wakes the follower; Run does the work.
type Follower struct {
	Log    *auditlog.Log
	Source AuditSource
	// Cursor is the file holding the last logged broker sequence number.
	Cursor string
	// Poll is how often Run looks for records when not woken (zero: 1 s).
	Poll time.Duration
	// Collaboration, if set, is stamped on every entry.
	Collaboration string
	Logger        *slog.Logger

	once sync.Once
	wake chan struct{}
	mu   sync.Mutex // serialises Sync

	imu     sync.Mutex
	indexes map[int64]uint64 // broker_seq → log index, for decisions this process logged
}

// maxIndexed bounds how many recent decisions Prove can find.
const maxIndexed = 1 << 17

// followBatch is how many records one step reads and appends at once.
const followBatch = 1000

func (f *Follower) init() {
	f.once.Do(func() { f.wake = make(chan struct{}, 1) })
}

// Record wakes the follower; the record itself is read back from the
// store, in order, so none is lost if the process dies now.
func (f *Follower) Record(context.Context, *store.AuditRecord) error {
	f.init()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run follows the store until ctx ends.
func (f *Follower) Run(ctx context.Context) error {
	f.init()
	poll := f.Poll
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		if err := f.Sync(ctx); err != nil && ctx.Err() == nil && f.Logger != nil {
			f.Logger.Error("transparency log: following the key broker's audit trail", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-f.wake:
		case <-t.C:
		}
	}
}

// Sync appends every stored record newer than the cursor and returns when
// the log has caught up with the store (as of the call).
func (f *Follower) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	after, err := f.readCursor()
	if err != nil {
		return err
	}
	for {
		recs, err := f.Source.ListAudit(ctx, after, followBatch)
		if err != nil {
			return fmt.Errorf("read the key broker's audit trail: %w", err)
		}
		if len(recs) == 0 {
			return nil
		}
		last := recs[len(recs)-1].Seq
		recs = releases(recs)
		// Appends in one step run concurrently, so Tessera batches them
		// into few durable writes.
		errs := make([]error, len(recs))
		idx := make([]uint64, len(recs))
		var wg sync.WaitGroup
		for i := range recs {
			wg.Go(func() {
				idx[i], errs[i] = (&Sink{Log: f.Log, Collaboration: f.Collaboration}).append(ctx, &recs[i])
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		f.remember(recs, idx)
		after = last
		if err := f.writeCursor(after); err != nil {
			return err
		}
	}
}

// releases keeps the release decisions of recs, in place: the trail also
// holds the owner API's refusals (store.DecisionAdminRefused), which are
// no key_release and are not logged.
func releases(recs []store.AuditRecord) []store.AuditRecord {
	return slices.DeleteFunc(recs, func(r store.AuditRecord) bool { return r.Decision == store.DecisionAdminRefused })
}

// remember notes where recs were logged, forgetting the oldest beyond
// maxIndexed.
func (f *Follower) remember(recs []store.AuditRecord, idx []uint64) {
	if len(recs) == 0 {
		return
	}
	f.imu.Lock()
	defer f.imu.Unlock()
	if f.indexes == nil {
		f.indexes = make(map[int64]uint64)
	}
	for i := range recs {
		f.indexes[recs[i].Seq] = idx[i]
	}
	if len(f.indexes) > maxIndexed {
		oldest := recs[len(recs)-1].Seq - maxIndexed/2
		for seq := range f.indexes {
			if seq < oldest {
				delete(f.indexes, seq)
			}
		}
	}
}

// Prove waits until the decision with broker sequence number seq is logged
// and a checkpoint covers it, and returns its inclusion proof. It finds
// decisions this process logged recently; for older ones it says so, and
// `kura audit ls --broker-seq` finds them in the log.
func (f *Follower) Prove(ctx context.Context, seq int64) (*auditlog.Proof, error) {
	f.init()
	select { // the decision may not have woken the follower yet
	case f.wake <- struct{}{}:
	default:
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		// The cursor is read first: Sync remembers indexes before it
		// moves the cursor, so a cursor past seq means the lookup below
		// saw every index this process will ever have for it.
		logged, cerr := f.readCursor()
		f.imu.Lock()
		i, ok := f.indexes[seq]
		f.imu.Unlock()
		switch {
		case ok:
			return f.Log.Prove(ctx, i)
		case cerr == nil && logged >= seq:
			return nil, fmt.Errorf("broker decision %d was logged before this process's recent window: find it with kura audit ls --broker-seq %d", seq, seq)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for broker decision %d to be logged: %w", seq, ctx.Err())
		case <-t.C:
		}
	}
}

// Logged returns the last broker sequence number the follower logged.
func (f *Follower) Logged() (int64, error) { return f.readCursor() }

func (f *Follower) readCursor() (int64, error) {
	data, err := os.ReadFile(f.Cursor)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("log cursor: %w", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: log cursor %s holds %q, not a sequence number", auditlog.ErrMalformed, f.Cursor, data)
	}
	return n, nil
}

// writeCursor replaces the cursor file atomically and durably.
func (f *Follower) writeCursor(n int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.Cursor), ".cursor-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strconv.FormatInt(n, 10) + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.Cursor)
}
