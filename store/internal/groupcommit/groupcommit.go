// Package groupcommit batches concurrent durable writes into one transaction
// (group commit): while one caller's transaction commits, others queue; the
// next caller to find the committer idle writes the whole queue at once. One
// fsync then acknowledges many writes, without a background goroutine.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Committer batches items for a flush function.
type Committer[T, R any] struct {
	flush func(ctx context.Context, items []T) ([]R, error)
	max   int

	mu      sync.Mutex
	cond    sync.Cond
	busy    bool
	pending []*call[T, R]
}

type call[T, R any] struct {
	item T
	res  R
	err  error
	done bool
}

// New returns a Committer that writes at most max items per call of flush.
// flush must return one result per item, in order, or an error that fails
// the whole batch.
func New[T, R any](max int, flush func(ctx context.Context, items []T) ([]R, error)) *Committer[T, R] {
	c := &Committer[T, R]{flush: flush, max: max}
	c.cond.L = &c.mu
	return c
}

// Do queues item and returns once the batch holding it is written. The
// flush runs with ctx's values but not its cancellation: once queued, an
// item is written even if its caller gives up.
func (c *Committer[T, R]) Do(ctx context.Context, item T) (R, error) {
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	me := &call[T, R]{item: item}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, me)
	for !me.done {
		if c.busy {
			c.cond.Wait()
			continue
		}
		n := min(len(c.pending), c.max)
		batch := c.pending[:n:n]
		c.pending = append([]*call[T, R](nil), c.pending[n:]...)
		c.busy = true
		c.mu.Unlock()
		func() {
			defer func() {
				c.mu.Lock()
				c.busy = false
				c.cond.Broadcast()
			}()
			c.run(context.WithoutCancel(ctx), batch)
		}()
	}
	return me.res, me.err
}

// run flushes batch and settles its calls. If flush panics, the calls fail
// and the panic goes on up the leader's stack once the others are released.
func (c *Committer[T, R]) run(ctx context.Context, batch []*call[T, R]) {
	items := make([]T, len(batch))
	for i, cl := range batch {
		items[i] = cl.item
	}
	var (
		res []R
		err = errors.New("groupcommit: flush panicked")
	)
	defer func() {
		if err == nil && len(res) != len(batch) {
			err = fmt.Errorf("groupcommit: flush returned %d results for %d items", len(res), len(batch))
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, cl := range batch {
			if err == nil {
				cl.res = res[i]
			}
			cl.err = err
			cl.done = true
		}
	}()
	res, err = c.flush(ctx, items)
}
