package worker

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/verifier"
)

// ServeConfig configures a serving worker (`kura worker serve`).
type ServeConfig struct {
	// Queue is the coordinator whose run queue this worker serves.
	Queue *coordinator.Client
	// Run is the template of every run: Attester, HTTP, Verifier, Engine,
	// OnStart and Logger are used as they are; Collaboration, Analysis and
	// RunID come from each claimed run. Attester is required. The worker
	// registers with a token from Run.Verifier, else from the verifier
	// role of the coordinator's own server (Queue.BaseURL).
	Run Config
	// Publish records a run's result bundle and receipt (in the
	// transparency log, which keeps them for kura result fetch) before the
	// run is reported finished. Required.
	Publish func(ctx context.Context, o *Output) error
	// Registered, when set, is told each registration the worker makes
	// (at start, and again when one lapses).
	Registered func(*coordinator.Registration)
	// Poll is how long to wait when the queue is empty (default 2 s).
	Poll time.Duration
	// Renew is how often the claim on a running run is renewed (default
	// coordinator.DefaultLease / 3).
	Renew time.Duration
}

// Serve registers with the coordinator, then claims queued runs and
// executes them one at a time, exactly as Run does (attesting again with
// each run's context bound), until ctx ends.
//
// Registration is by attestation: Serve makes an Ed25519 queue key in
// memory, has the verifier appraise evidence that binds it, and presents
// the verifier's token; the key never leaves this process. A worker whose
// TEE gives no evidence, or whose evidence the verifier refuses, stops
// before it claims (and fails) anything. When the registration lapses the
// worker registers again.
//
// A run is reported completed, with the digests of its result bundle and
// receipt, only once Publish has recorded them; a run that fails is
// reported failed with the reason. Nothing of a run outlives it. If this
// process dies mid-run, its claim lapses and another worker runs it again
// under the same run id.
func Serve(ctx context.Context, cfg ServeConfig) error {
	if cfg.Queue == nil || cfg.Publish == nil || cfg.Run.Attester == nil {
		return errors.New("worker: Queue, Publish and Run.Attester are required")
	}
	log := cfg.Run.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	s := &server{cfg: cfg, log: log, queue: &coordinator.WorkerClient{Client: *cfg.Queue, Key: key}}
	if err := s.register(ctx); err != nil {
		return err
	}
	poll := cmp.Or(cfg.Poll, 2*time.Second)
	for {
		run, err := s.queue.Claim(ctx)
		if errors.Is(err, fault.Unauthenticated) {
			if err = s.register(ctx); err == nil {
				continue
			}
		}
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "claiming a run", "err", err)
		}
		if run == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(poll):
			}
			continue
		}
		s.serveOne(ctx, run)
	}
}

// server is a serving worker's state.
type server struct {
	cfg   ServeConfig
	log   *slog.Logger
	queue *coordinator.WorkerClient
}

// register attests with the queue key bound and registers it.
func (s *server) register(ctx context.Context) error {
	url := cmp.Or(s.cfg.Run.Verifier, s.cfg.Queue.BaseURL)
	vc := &verifier.Client{BaseURL: url, HTTP: s.cfg.Run.HTTP}
	pub := s.queue.Key.Public().(ed25519.PublicKey)
	rep, err := vc.Attest(ctx, s.cfg.Run.Attester, pub, []byte(coordinator.WorkerSigningContext))
	if err != nil {
		return fmt.Errorf("worker: attesting to register with the coordinator (verifier %s): %w", url, err)
	}
	reg, err := s.queue.Register(ctx, []byte(rep.Token))
	if err != nil {
		return fmt.Errorf("worker: registering with the coordinator: %w", err)
	}
	s.log.InfoContext(ctx, "worker registered; claiming runs", "worker", reg.Name, "tee", reg.TEE, "measurement", reg.Measurement,
		"status", reg.Status, "expires", reg.Expires)
	if s.cfg.Registered != nil {
		s.cfg.Registered(reg)
	}
	return nil
}

// serveOne executes one claimed run and reports how it ended.
func (s *server) serveOne(ctx context.Context, run *coordinator.RunStatus) {
	log := s.log.With("run_id", run.ID, "collaboration", run.Collaboration, "analysis", run.Analysis, "attempt", run.Attempts)
	log.InfoContext(ctx, "run claimed")
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go s.renew(runCtx, log, run.ID)

	finish := coordinator.FinishRequest{State: store.RunFailed}
	o, err := s.execute(runCtx, run)
	if o != nil {
		if perr := s.cfg.Publish(runCtx, o); perr != nil {
			err = errors.Join(err, perr)
		}
		if o.Receipt != nil {
			finish.Receipt = result.DigestHex(o.Receipt.Envelope.Payload)
		}
	}
	if err == nil {
		finish.State, finish.Result = store.RunCompleted, result.DigestHex(o.Result.Envelope.Payload)
	} else {
		finish.Error = err.Error()
	}
	if ctx.Err() != nil {
		return // shutting down: the claim lapses and another worker runs it again
	}
	ferr := s.queue.Finish(ctx, run.ID, finish)
	if errors.Is(ferr, fault.Unauthenticated) && s.register(ctx) == nil {
		ferr = s.queue.Finish(ctx, run.ID, finish)
	}
	if ferr != nil {
		log.ErrorContext(ctx, "reporting the run's end", "err", ferr, "state", finish.State)
		return
	}
	log.InfoContext(ctx, "run finished", "state", finish.State, "error", finish.Error)
}

func (s *server) execute(ctx context.Context, run *coordinator.RunStatus) (*Output, error) {
	file, err := s.queue.Get(ctx, run.Collaboration)
	if err != nil {
		return nil, err
	}
	rc := s.cfg.Run
	rc.Collaboration, rc.Analysis, rc.RunID = file, run.Analysis, run.ID
	return Run(ctx, rc)
}

// renew keeps the claim on a run alive until ctx ends.
func (s *server) renew(ctx context.Context, log *slog.Logger, id string) {
	every := cmp.Or(s.cfg.Renew, coordinator.DefaultLease/3)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.queue.Renew(ctx, id); err != nil && ctx.Err() == nil {
				log.WarnContext(ctx, "renewing the claim on a run", "err", err)
			}
		}
	}
}
