package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/worker"
)

// servingWorker is a worker serving a server's run queue from this
// process, as `kura worker serve --tee sim --dev` does on a TEE machine
// (docs/spec/cleanroom.md §9).
type servingWorker struct {
	// reg is what the worker registered as.
	reg *coordinator.Registration
	// published carries the summary of each run the worker published.
	published chan runSummary
	cancel    context.CancelFunc
	// exited is closed when worker.Serve has returned err.
	exited chan struct{}
	err    error
}

// runSummary is what a worker says of a run it published: no output
// values, which the receivers fetch from the log.
type runSummary struct {
	id               string
	rows, suppressed int
}

// serveQueue starts a worker, with the story's sim attester, serving the
// run queue of the server at base, and returns once it has registered;
// stop stops it. It registers with a token from that server's verifier,
// records each run's start, result bundle and receipt in that server's
// transparency log, and attests each run to the manifest's verifier.
func (d *demo) serveQueue(ctx context.Context, c *CleanRoom, base string, log *slog.Logger) (*servingWorker, error) {
	a, err := c.simAttester()
	if err != nil {
		return nil, err
	}
	regs := make(chan *coordinator.Registration, 1)
	w := &servingWorker{published: make(chan runSummary, 1), exited: make(chan struct{})}
	logs := &intake.Client{BaseURL: base}
	cfg := worker.ServeConfig{
		Queue: &coordinator.Client{BaseURL: base},
		Run: worker.Config{Attester: a, Logger: log,
			OnStart: func(ctx context.Context, start *result.File) error {
				body, err := start.Marshal()
				if err != nil {
					return err
				}
				_, err = logs.Submit(ctx, auditlog.KindRunStart, body)
				return err
			}},
		Registered: func(reg *coordinator.Registration) {
			select {
			case regs <- reg:
			default: // registered again later: the demo asked once
			}
		},
		Publish: func(ctx context.Context, o *worker.Output) error {
			if err := d.cfg.PublishRun(ctx, http.DefaultClient, base, o.Result, o.Receipt); err != nil {
				return err
			}
			select {
			case w.published <- runSummary{id: o.RunID, rows: o.Rows, suppressed: o.Suppressed}:
			default:
			}
			return nil
		},
		// The demo's analyst submits right after the worker registers:
		// poll briskly rather than the command's 2 s.
		Poll: 50 * time.Millisecond,
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() { w.err = worker.Serve(ctx, cfg); close(w.exited) }()
	select {
	case w.reg = <-regs:
		return w, nil
	case <-w.exited:
		w.cancel()
		return nil, fmt.Errorf("the worker did not register: %w", w.err)
	}
}

// stop stops the worker and waits until it has.
func (w *servingWorker) stop() {
	w.cancel()
	<-w.exited
}

// await polls a run until it completes, as `kura run wait` does; a run
// that fails, or a worker that stops, is an error.
func (w *servingWorker) await(ctx context.Context, q *coordinator.Client, id string) (*coordinator.RunStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		r, err := q.GetRun(ctx, id)
		if err != nil {
			return nil, err
		}
		switch r.State {
		case store.RunCompleted:
			return r, nil
		case store.RunFailed:
			return nil, fmt.Errorf("run %s failed on attempt %d: %s", id, r.Attempts, r.Error)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("run %s still %s: %w", id, r.State, ctx.Err())
		case <-w.exited:
			return nil, fmt.Errorf("the worker stopped with run %s %s: %w", id, r.State, w.err)
		case <-t.C:
		}
	}
}

// summary is what the worker said of the run it published last.
func (w *servingWorker) summary(ctx context.Context, id string) (runSummary, error) {
	select {
	case s := <-w.published:
		if s.id != id {
			return runSummary{}, fmt.Errorf("the worker published run %s, not %s", s.id, id)
		}
		return s, nil
	case <-ctx.Done():
		return runSummary{}, ctx.Err()
	}
}
