package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBatchesConcurrentCalls(t *testing.T) {
	var (
		next    atomic.Int64
		flushes atomic.Int64
		maxSeen atomic.Int64
	)
	c := New(16, func(ctx context.Context, items []int) ([]int64, error) {
		flushes.Add(1)
		if int64(len(items)) > maxSeen.Load() {
			maxSeen.Store(int64(len(items)))
		}
		time.Sleep(time.Millisecond)
		out := make([]int64, len(items))
		for i := range items {
			out[i] = next.Add(1)
		}
		return out, nil
	})
	const n = 400
	var wg sync.WaitGroup
	seen := make([]atomic.Bool, n+1)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			seq, err := c.Do(context.Background(), i)
			if err != nil {
				t.Error(err)
				return
			}
			if seq < 1 || seq > n || seen[seq].Swap(true) {
				t.Errorf("bad or duplicate seq %d", seq)
			}
		})
	}
	wg.Wait()
	if maxSeen.Load() > 16 {
		t.Errorf("batch of %d > max 16", maxSeen.Load())
	}
	t.Logf("%d items in %d flushes", n, flushes.Load())
	if flushes.Load() >= n {
		t.Errorf("no batching: %d flushes", flushes.Load())
	}
}

func TestErrorsAndPanics(t *testing.T) {
	boom := errors.New("boom")
	c := New(4, func(ctx context.Context, items []string) ([]int, error) {
		switch items[0] {
		case "err":
			return nil, boom
		case "short":
			return nil, nil
		case "panic":
			panic("flush")
		}
		return make([]int, len(items)), nil
	})
	if _, err := c.Do(context.Background(), "err"); !errors.Is(err, boom) {
		t.Errorf("err: %v", err)
	}
	if _, err := c.Do(context.Background(), "short"); err == nil {
		t.Error("short: no error")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic not propagated")
			}
		}()
		c.Do(context.Background(), "panic")
	}()
	if _, err := c.Do(context.Background(), "ok"); err != nil {
		t.Errorf("after panic: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, "ok"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestQueueLongerThanMax holds the first flush until more than three
// batches' worth of callers queue behind it: every caller gets its own
// item's result, in batches of at most max, each led by its oldest caller.
func TestQueueLongerThanMax(t *testing.T) {
	const max, n = 4, 20
	release := make(chan struct{})
	var (
		first   sync.Once
		held    atomic.Int64 // items in the held flush
		flushes atomic.Int64
	)
	c := New(max, func(ctx context.Context, items []int) ([]int, error) {
		first.Do(func() { held.Store(int64(len(items))); <-release })
		flushes.Add(1)
		if len(items) > max {
			t.Errorf("batch of %d > max %d", len(items), max)
		}
		out := make([]int, len(items))
		for i, v := range items {
			out[i] = 2 * v
		}
		return out, nil
	})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got, err := c.Do(context.Background(), i)
			if err != nil || got != 2*i {
				t.Errorf("Do(%d) = %d, %v", i, got, err)
			}
		})
	}
	waitQueued(c, func(q int) bool { h := held.Load(); return h > 0 && q+int(h) == n })
	close(release)
	wg.Wait()
	if f := flushes.Load(); f < n/max {
		t.Errorf("%d flushes for %d items of at most %d", f, n, max)
	}
	// The committer is idle again: a lone call leads its own batch.
	if got, err := c.Do(context.Background(), 7); err != nil || got != 14 {
		t.Errorf("after: %d, %v", got, err)
	}
}

// TestErrorFailsWholeBatch: when a flush fails, every call of its batch
// gets the error, and the queue behind it is still written.
func TestErrorFailsWholeBatch(t *testing.T) {
	boom := errors.New("boom")
	release := make(chan struct{})
	var (
		first sync.Once
		held  atomic.Bool
	)
	c := New(64, func(ctx context.Context, items []int) ([]int, error) {
		var hold bool
		first.Do(func() { hold = true })
		if hold {
			held.Store(true)
			<-release
			return nil, boom // the lone first call
		}
		for _, v := range items {
			if v < 0 {
				return nil, boom
			}
		}
		return make([]int, len(items)), nil
	})
	done := make(chan error, 1)
	go func() {
		_, err := c.Do(context.Background(), 0)
		done <- err
	}()
	waitQueued(c, func(int) bool { return held.Load() })
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			v := i
			if i == 3 {
				v = -1
			}
			_, errs[i] = c.Do(context.Background(), v)
		})
	}
	waitQueued(c, func(q int) bool { return q == len(errs) })
	close(release)
	wg.Wait()
	if err := <-done; !errors.Is(err, boom) {
		t.Errorf("first: %v", err)
	}
	// The eight queued behind the first went in one batch holding -1.
	for i, err := range errs {
		if !errors.Is(err, boom) {
			t.Errorf("call %d: %v", i, err)
		}
	}
}

// waitQueued waits until c has a leader and ok holds for the number of
// calls queued behind it.
func waitQueued[T, R any](c *Committer[T, R], ok func(queued int) bool) {
	for {
		c.mu.Lock()
		busy, queued := c.busy, len(c.pending)
		c.mu.Unlock()
		if busy && ok(queued) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
