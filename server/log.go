package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/brokerlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/blob/local"
	"github.com/kura-cc/kura/console"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/keybroker"
)

// klogOnce sets klog's logger once per process: klog is global, and
// setting it while another server's log writes through it would race.
var klogOnce sync.Once

// buildLog opens the transparency log in <DataDir>/log and serves it
// read-only under /log/; follows the key broker's audit trail into it;
// records the verifier's appraisal inputs when they change; and mounts the
// intake for clean-room and time-lock entries.
func (b *build) buildLog(ctx context.Context) error {
	// Tessera logs through klog, a process-wide logger: send it to the
	// structured log of the process's first server instead of raw stderr.
	klogOnce.Do(func() { klog.SetSlogLogger(b.log) })
	cfg := b.cfg.Log
	origin := cfg.Origin
	if origin == "" {
		origin = auditlog.DefaultOrigin
	}
	keyFile := b.path(cfg.KeyFile, "log-key")
	key, err := loadOrCreateLogKey(keyFile, origin)
	if err != nil {
		logRefusal(b.log, "log key", keyFile, err)
		return err
	}
	l, err := auditlog.Open(ctx, auditlog.Config{Dir: filepath.Join(b.cfg.DataDir, "log"), Key: key, Logger: b.log,
		Witnesses: cfg.Witnesses, WitnessThreshold: cfg.WitnessThreshold})
	if err != nil {
		return err
	}
	b.onClose(l.Close)
	b.auditLog = l
	b.log.Info("transparency log open", "origin", l.Origin(), "verifier_key", key.VerifierKey())
	b.mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	if b.broker != nil {
		if err := b.followBroker(ctx, l); err != nil {
			return err
		}
	}
	b.ready.AddCheck("log", func(ctx context.Context) error {
		_, _, err := l.Checkpoint(ctx)
		return err
	})
	if err := b.logVerifierInputs(ctx, l); err != nil {
		return err
	}
	archive := b.cfg.Blobs
	if archive == nil {
		if archive, err = local.New(ctx, local.Config{Dir: filepath.Join(b.cfg.DataDir, "blobs"), Logger: b.log}); err != nil {
			return fmt.Errorf("blob store: %w", err)
		}
	}
	icfg := intake.Config{Log: l, Archive: archive, Runs: b.metrics, Uploads: b.uploads, MaxDataset: b.cfg.MaxDataset, Logger: b.log}
	if b.admins != nil {
		icfg.Uploader = func(r *http.Request) (string, error) {
			return b.admins.Authenticate(r, nil, b.state.Ephemeral())
		}
	}
	in, err := intake.New(icfg)
	if err != nil {
		return err
	}
	in.Register(b.mux)
	return nil
}

// followBroker copies the key broker's durable audit trail into the log in
// the background: a release is acknowledged once stored, and reaches the
// log moments later — after a crash, when the server restarts. It also
// records every stored release-policy version, answering with its proof.
func (b *build) followBroker(ctx context.Context, l *auditlog.Log) error {
	f := &brokerlog.Follower{Log: l, Source: b.broker.store, Cursor: filepath.Join(b.cfg.DataDir, "log-cursor"), Logger: b.log}
	if err := f.Sync(ctx); err != nil {
		return fmt.Errorf("catch the log up with the key broker's audit trail: %w", err)
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { f.Run(runCtx); close(done) }()
	b.onClose(func(ctx context.Context) error { // runs before the log closes (reverse order)
		stop()
		<-done
		if err := f.Sync(ctx); err != nil {
			return fmt.Errorf("transparency log: final catch-up with the key broker's audit trail: %w", err)
		}
		return nil
	})
	b.broker.sinks = append(b.broker.sinks, f)
	b.broker.proveFn = func(ctx context.Context, seq int64) ([]byte, error) {
		p, err := f.Prove(ctx, seq)
		if err != nil {
			return nil, err
		}
		return json.Marshal(p)
	}
	b.broker.onPol = append(b.broker.onPol, func(ctx context.Context, c *keybroker.PolicyChange) ([]byte, error) {
		p, err := l.AppendAndProve(ctx, &auditlog.Entry{Kind: auditlog.KindPolicyChange, Time: c.Time,
			PolicyID: fmt.Sprintf("%s@%d", c.Scope, c.Version), Subject: "sha256:" + c.SHA256})
		if err != nil {
			return nil, err
		}
		return json.Marshal(p)
	})
	return nil
}

// buildCoordinator mounts the coordinator over the store and the log.
func (b *build) buildCoordinator(ctx context.Context) error {
	if b.auditLog == nil {
		return fmt.Errorf("%w: the coordinator needs the log role (it logs every manifest version and approval)", ErrConfig)
	}
	// Workers register with a token from a verifier the broker trusts
	// too: this server's own, those at TrustJWKS and the pinned keys.
	tokens, err := b.trustedKeys(ctx)
	if err != nil {
		return fmt.Errorf("%w: the verifier keys workers register with: %w", ErrConfig, err)
	}
	c, err := coordinator.New(coordinator.Config{Store: b.state, Log: b.auditLog, Nonces: b.state.Ephemeral(), Uploads: b.uploads,
		Runs: b.state, Registrations: b.state.Ephemeral(), Tokens: tokens, DevMode: b.cfg.DevMode, Lease: b.cfg.RunLease, Logger: b.log})
	if err != nil {
		return err
	}
	c.Register(b.mux)
	b.mux.Handle("/console/", console.Handler(b.cfg.ConsoleChecks))
	b.mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	return nil
}

// loadOrCreateLogKey reads the log key, or creates it (mode 0600) with its
// public verifier key beside it.
func loadOrCreateLogKey(path, origin string) (*auditlog.SignerKey, error) {
	key, err := auditlog.LoadSignerKey(path)
	if err == nil {
		if key.Name() != origin {
			return nil, fmt.Errorf("%w: log key %s is for origin %q, not %q", ErrConfig, path, key.Name(), origin)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, vkey, err := auditlog.GenerateKey(origin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := key.WriteFile(path); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	return key, nil
}

// logVerifierInputs records the verifier's appraisal inputs in the log when
// they differ from what the log last recorded for this server: the
// reference values file (reference_values_change) and the appraisal policy
// (policy_change, policy id "appraisal"), each by the SHA-256 of its bytes,
// the built-in policy by that of its source. The digests last logged are
// kept in <DataDir>/log-verifier-inputs.
func (b *build) logVerifierInputs(ctx context.Context, l *auditlog.Log) error {
	digest := func(path string, builtin []byte) (string, error) {
		data := builtin
		if path != "" {
			var err error
			if data, err = os.ReadFile(path); err != nil {
				return "", err
			}
		}
		sum := sha256.Sum256(data)
		return "sha256:" + hex.EncodeToString(sum[:]), nil
	}
	v := b.cfg.Verification
	ref, err := digest(v.ReferenceFile, nil)
	if err != nil {
		return err
	}
	pol, err := digest(v.PolicyFile, []byte(appraisal.DefaultPolicy))
	if err != nil {
		return err
	}
	state := filepath.Join(b.cfg.DataDir, "log-verifier-inputs")
	last, _ := os.ReadFile(state)
	lines := strings.Split(string(last), "\n")
	now := time.Now().UTC()
	if len(lines) < 1 || lines[0] != ref {
		if _, err := l.Append(ctx, &auditlog.Entry{Kind: auditlog.KindReferenceValuesChange, Time: now, Subject: ref}); err != nil {
			return err
		}
	}
	if len(lines) < 2 || lines[1] != pol {
		if _, err := l.Append(ctx, &auditlog.Entry{Kind: auditlog.KindPolicyChange, Time: now, PolicyID: "appraisal", Subject: pol}); err != nil {
			return err
		}
	}
	return os.WriteFile(state, []byte(ref+"\n"+pol+"\n"), 0o600)
}
