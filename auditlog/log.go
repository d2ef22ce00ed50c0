//go:build !js

package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
)

// Defaults for Config. With them, Append returns within about
// DefaultBatchMaxAge plus one fsync'd write, and Prove within about two
// checkpoint intervals (docs/spec/auditlog.md §7).
const (
	DefaultCheckpointInterval = 200 * time.Millisecond
	DefaultBatchMaxAge        = 10 * time.Millisecond
	DefaultBatchMaxSize       = 256
)

// WitnessEndpoint is a witness the log asks to cosign each checkpoint
// (C2SP tlog-witness): the URL under which it serves /add-checkpoint and
// its cosignature verifier key.
type WitnessEndpoint struct {
	URL         string
	VerifierKey string
}

// Config configures a Log.
type Config struct {
	// Dir holds the log (tlog-tiles layout plus Tessera's private .state).
	Dir string
	// Key signs checkpoints; its name is the log's origin.
	Key *SignerKey
	// Origin, if set, must equal Key's name (a guard against using the
	// wrong key for a log).
	Origin string
	// CheckpointInterval is how often a new checkpoint may be published
	// (zero: DefaultCheckpointInterval; Tessera's minimum is 100 ms).
	CheckpointInterval time.Duration
	// BatchMaxAge and BatchMaxSize bound how long and how many entries
	// are gathered into one durable write (zero: the defaults above).
	BatchMaxAge  time.Duration
	BatchMaxSize uint
	// Witnesses cosign each checkpoint before it is published; at least
	// WitnessThreshold of them must (zero: all). None: no witnessing.
	Witnesses        []WitnessEndpoint
	WitnessThreshold int
	// HTTPClient talks to witnesses (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Logger receives the log's own events (nil: discarded).
	Logger *slog.Logger
}

// Log is an open, writable audit log. It is safe for concurrent use; one
// process at a time should write a directory.
type Log struct {
	dir      string
	origin   string
	verifier note.Verifier
	add      tessera.AddFn
	shutdown func(context.Context) error
	cancel   context.CancelFunc
	src      source
	log      *slog.Logger

	mu     sync.RWMutex
	closed bool
}

// Open opens the log in cfg.Dir, creating it (and publishing a checkpoint
// of the empty tree) if it does not exist. The context bounds opening only.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Dir == "" || cfg.Key == nil {
		return nil, errors.New("auditlog: Dir and Key are required")
	}
	if cfg.Origin != "" && cfg.Origin != cfg.Key.Name() {
		return nil, fmt.Errorf("auditlog: key is for origin %q, log wants %q", cfg.Key.Name(), cfg.Origin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.BatchMaxAge == 0 {
		cfg.BatchMaxAge = DefaultBatchMaxAge
	}
	if cfg.BatchMaxSize == 0 {
		cfg.BatchMaxSize = DefaultBatchMaxSize
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(cfg.Key.Signer()).
		WithCheckpointInterval(cfg.CheckpointInterval).
		WithBatching(cfg.BatchMaxSize, cfg.BatchMaxAge).
		WithShutdownTimeout(30 * time.Second)
	if len(cfg.Witnesses) > 0 {
		var ws []tessera.Witness
		for _, w := range cfg.Witnesses {
			u, err := url.Parse(w.URL)
			if err != nil {
				return nil, fmt.Errorf("auditlog: witness URL %q: %w", w.URL, err)
			}
			tw, err := tessera.NewWitness(w.VerifierKey, u)
			if err != nil {
				return nil, fmt.Errorf("auditlog: witness key for %s: %w", w.URL, err)
			}
			ws = append(ws, tw)
		}
		n := cfg.WitnessThreshold
		if n == 0 {
			n = len(ws)
		}
		if n < 0 || n > len(ws) {
			return nil, fmt.Errorf("auditlog: witness threshold %d with %d witnesses", n, len(ws))
		}
		opts.WithWitnesses(witnessGroup(n, ws), nil)
	}
	driver, err := posix.New(ctx, posix.Config{Path: cfg.Dir, HTTPClient: cfg.HTTPClient})
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	// Tessera's background work (integration, checkpoints) lives until Close.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	app, shutdown, _, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auditlog: open %s: %w", cfg.Dir, err)
	}
	src, err := openSource(cfg.Dir, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	l := &Log{
		dir: cfg.Dir, origin: cfg.Key.Name(), verifier: cfg.Key.Verifier(), add: app.Add,
		shutdown: shutdown, cancel: cancel, src: src, log: cfg.Logger,
	}
	l.log.Info("audit log open", "dir", cfg.Dir, "origin", l.origin, "checkpoint_interval", cfg.CheckpointInterval, "witnesses", len(cfg.Witnesses))
	return l, nil
}

// witnessGroup builds an n-of-len(ws) group (0 < n <= len(ws), checked by
// the caller, since tessera.NewWitnessGroup panics otherwise).
func witnessGroup(n int, ws []tessera.Witness) tessera.WitnessGroup {
	g := tessera.NewWitnessGroup(0)
	for _, w := range ws {
		g.Components = append(g.Components, w)
	}
	g.N = n
	return g
}

// Origin returns the log's origin (its checkpoints' first line).
func (l *Log) Origin() string { return l.origin }

// Verifier returns the verifier for the log's checkpoints.
func (l *Log) Verifier() note.Verifier { return l.verifier }

// Append adds e to the log and returns its index once the entry is durably
// sequenced: written to the entry bundles and integrated into the tree with
// fsync'd writes, so an acknowledged entry survives a crash (SIGKILL or
// power loss on a filesystem honouring fsync). A checkpoint committing to
// it follows within about two checkpoint intervals; Prove waits for it.
func (l *Log) Append(ctx context.Context, e *Entry) (uint64, error) {
	b, err := e.Marshal()
	if err != nil {
		return 0, fmt.Errorf("audit entry: %w", err)
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return 0, ErrClosed
	}
	future := l.add(ctx, tessera.NewEntry(b))
	l.mu.RUnlock()
	idx, err := future()
	if err != nil {
		return 0, fmt.Errorf("audit log append: %w", err)
	}
	return idx.Index, nil
}

// Prove waits until a published checkpoint covers index and returns the
// proof of the entry's inclusion in it.
func (l *Log) Prove(ctx context.Context, index uint64) (*Proof, error) {
	raw, cp, err := l.awaitCheckpoint(ctx, index+1)
	if err != nil {
		return nil, err
	}
	return buildProof(ctx, l.src, index, raw, cp)
}

// AppendAndProve appends e and returns its proof (Append, then Prove).
func (l *Log) AppendAndProve(ctx context.Context, e *Entry) (*Proof, error) {
	i, err := l.Append(ctx, e)
	if err != nil {
		return nil, err
	}
	return l.Prove(ctx, i)
}

// Checkpoint returns the latest published checkpoint, verified.
func (l *Log) Checkpoint(ctx context.Context) ([]byte, *flog.Checkpoint, error) {
	raw, err := readCheckpoint(ctx, l.src)
	if err != nil {
		return nil, nil, fmt.Errorf("audit log checkpoint: %w", err)
	}
	cp, err := openCheckpoint(raw, l.verifier)
	if err != nil {
		return nil, nil, err
	}
	return raw, cp, nil
}

// awaitCheckpoint polls the published checkpoint until it covers size.
func (l *Log) awaitCheckpoint(ctx context.Context, size uint64) ([]byte, *flog.Checkpoint, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		raw, cp, err := l.Checkpoint(ctx)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, err
		}
		if err == nil && cp.Size >= size {
			return raw, cp, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("waiting for a checkpoint of size %d: %w", size, ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops accepting entries, waits (bounded by ctx) until a checkpoint
// commits to every acknowledged entry, and stops background work.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := l.shutdown(ctx)
	l.cancel()
	if err != nil {
		return fmt.Errorf("audit log close: %w", err)
	}
	return nil
}
