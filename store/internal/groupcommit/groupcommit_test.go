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
