// Package groupcommit batches concurrent durable writes into one transaction
// (group commit): while one caller's transaction commits, others queue; when
// it is done, the oldest queued caller writes the whole queue at once. One
// fsync then acknowledges many writes, without a background goroutine.
//
// Before it takes its batch a leader yields the processor once, so that
// callers already running towards Do join the batch rather than wait for
// the next one: on a busy server batches grow with the load, and with it
// the writes each fsync acknowledges; on an idle one the yield returns at
// once. Callers are woken one by one — settled, or to lead the next batch —
// never all at once.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
)

// Committer batches items for a flush function.
type Committer[T, R any] struct {
	flush func(ctx context.Context, items []T) ([]R, error)
	max   int

	mu sync.Mutex
	// busy is set while a leader collects or flushes a batch; when it is
	// clear, pending is empty.
	busy    bool
	pending []*call[T, R] // queued calls, oldest first
}

type call[T, R any] struct {
	item T
	res  R
	err  error
	done bool
	// wake is sent to once: when the call is settled, or when it is to
	// lead the next batch.
	wake chan struct{}
}

// New returns a Committer that writes at most limit items per call of flush.
// flush must return one result per item, in order, or an error that fails
// the whole batch.
func New[T, R any](limit int, flush func(ctx context.Context, items []T) ([]R, error)) *Committer[T, R] {
	return &Committer[T, R]{flush: flush, max: max(limit, 1)}
}

// Do queues item and returns once the batch holding it is written. The
// flush runs with ctx's values but not its cancellation: once queued, an
// item is written even if its caller gives up.
func (c *Committer[T, R]) Do(ctx context.Context, item T) (R, error) {
	if err := ctx.Err(); err != nil {
		var zero R
		return zero, err
	}
	me := &call[T, R]{item: item, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	c.pending = append(c.pending, me)
	if c.busy {
		c.mu.Unlock()
		<-me.wake // the leader settled me, or handed me the lead
		if me.done {
			return me.res, me.err
		}
	} else {
		c.busy = true
		c.mu.Unlock()
	}
	// me leads: it is the oldest queued call, so in the batch it takes.
	c.lead(ctx)
	return me.res, me.err
}

// lead writes the oldest queued calls as one batch, wakes them, and hands
// the lead to the oldest call still queued, if any.
func (c *Committer[T, R]) lead(ctx context.Context) {
	runtime.Gosched() // let callers about to queue join this batch
	c.mu.Lock()
	n := min(len(c.pending), c.max)
	batch := c.pending[:n:n]
	c.pending = append([]*call[T, R](nil), c.pending[n:]...)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cl := range batch[1:] { // batch[0] is the leader
			cl.wake <- struct{}{}
		}
		if len(c.pending) > 0 {
			c.pending[0].wake <- struct{}{}
		} else {
			c.busy = false
		}
	}()
	c.run(context.WithoutCancel(ctx), batch)
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
