package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/internal/metrics"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// serveRole is one part of the platform a server can run. A role mounts its
// routes on the shared mux and may add readiness checks, metrics, audit
// sinks and closers through the mountContext.
type serveRole struct {
	name string
	// bit is the role's bit in serveFlags.roles, 0 for roles only --roles
	// (or roleAll) selects.
	bit   int
	mount func(m *mountContext) error
}

// serveRoles lists every role in mount order. To add one (the audit log,
// the coordinator), append {name, 0, mountX} here: `kura serve` runs it by
// default and --roles can name it.
func serveRoles() []serveRole {
	return []serveRole{
		{name: "verifier", bit: roleVerifier, mount: mountVerifier},
		{name: "kbs", bit: roleKBS, mount: mountKBS},
		{name: "log", mount: mountLog},
		{name: "coordinator", mount: mountCoordinator},
	}
}

func roleNames(rs []serveRole) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.name)
	}
	return out
}

// selectRoles returns the roles f asks for, in mount order.
func (f *serveFlags) selectRoles() ([]serveRole, error) {
	all := serveRoles()
	if len(f.roleNames) > 0 {
		var out []serveRole
		for _, r := range all {
			if slices.Contains(f.roleNames, r.name) {
				out = append(out, r)
			}
		}
		for _, n := range f.roleNames {
			if !slices.Contains(roleNames(all), n) {
				return nil, usagef("--roles: unknown role %q; roles are %s", n, strings.Join(roleNames(all), ", "))
			}
		}
		return out, nil
	}
	if f.roles == roleAll {
		return all, nil
	}
	var out []serveRole
	for _, r := range all {
		if r.bit != 0 && f.roles&r.bit != 0 {
			out = append(out, r)
		}
	}
	return out, nil
}

// mountContext is what a role gets when it mounts. Everything is built
// before serving starts; roles must not keep it past mount except through
// the fields they were given.
type mountContext struct {
	ctx context.Context
	f   *serveFlags
	log *slog.Logger
	mux *http.ServeMux
	// metrics are the server's; metrics.Registry() takes a role's own
	// collectors and metrics is a metrics.RunRecorder for the coordinator.
	metrics *metrics.Metrics
	// ready takes a role's readiness checks.
	ready *web.Readiness
	// verifier is the built-in verifier, built for every server (the key
	// broker's /kbs/v0/attest uses it) but mounted only by the verifier role.
	verifier *verifier.Service
	issuer   *token.Issuer
	// audit receives every key-release decision after the broker has
	// stored it; the log role adds its sink with audit.add.
	audit *auditFanout
	// decisions proves logged key-release decisions, once the log role
	// has mounted a follower of the key broker's audit trail.
	decisions *decisionProver
	// state is the server's store (--store: SQLite by default, or
	// PostgreSQL), shared by every role: the verifier's nonces, the key
	// broker's sessions, resources and audit trail, the coordinator's
	// collaborations. Nil for `kura verifier serve` without --store, which
	// keeps its nonces in memory.
	state store.Store
	// kbsStore is state, once the kbs role has mounted.
	kbsStore store.Store
	// auditLog is the transparency log, once the log role has mounted.
	auditLog *auditlog.Log
	// policyChanges are told of every release-policy version the key
	// broker stores; the log role adds one.
	policyChanges []func(context.Context, *keybroker.PolicyChange) ([]byte, error)
	// openBlobs opens the configured blob store (--blob; `kura serve` only).
	openBlobs func(context.Context) (blob.Store, error)
	closers   []func()
}

// onClose registers fn to run when the server stops, in reverse order.
func (m *mountContext) onClose(fn func()) { m.closers = append(m.closers, fn) }

// auditFanout hands each decision to every sink in turn; the first error
// fails the decision (a release that cannot be logged does not happen).
// Sinks are added while roles mount, before serving, and never after.
type auditFanout struct{ sinks []keybroker.AuditSink }

func (a *auditFanout) add(s keybroker.AuditSink) { a.sinks = append(a.sinks, s) }

// Record implements keybroker.AuditSink.
func (a *auditFanout) Record(ctx context.Context, rec *store.AuditRecord) error {
	for _, s := range a.sinks {
		if err := s.Record(ctx, rec); err != nil {
			return err
		}
	}
	return nil
}

// decisionProver hands the key broker inclusion proofs of its decisions
// from the log role's follower, set while roles mount, before serving.
type decisionProver struct{ follower *auditlog.BrokerFollower }

func (d *decisionProver) prove(ctx context.Context, seq int64) ([]byte, error) {
	if d.follower == nil {
		return nil, errors.New("this server runs no log role")
	}
	p, err := d.follower.Prove(ctx, seq)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

// server is a kura server ready to serve.
type server struct {
	// handler serves the roles, /healthz, /readyz and, unless
	// --metrics-addr, /metrics.
	handler http.Handler
	// metricsHandler serves /metrics, /healthz and /readyz for
	// --metrics-addr.
	metricsHandler http.Handler
	ready          *web.Readiness
	metrics        *metrics.Metrics
	roles          []string
	close          func()
}

// newServer builds the roles f selects.
func newServer(ctx context.Context, f *serveFlags, log *slog.Logger) (s *server, err error) {
	roles, err := f.selectRoles()
	if err != nil {
		return nil, err
	}
	if len(roles) == 0 {
		return nil, usagef("no roles to run")
	}
	keyPath := f.key
	if keyPath == "" {
		keyPath = filepath.Join(f.data, "verifier-key.pem")
	}
	key, err := loadOrCreateKey(keyPath, log)
	if err != nil {
		return nil, err
	}
	build := "kura " + Version
	if f.dev {
		build += " (dev mode: INSECURE sim TEE accepted)"
	}
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: build})
	if err != nil {
		return nil, err
	}
	m := &mountContext{
		ctx: ctx, f: f, log: log, mux: http.NewServeMux(), metrics: metrics.New(), ready: &web.Readiness{},
		issuer: iss, audit: &auditFanout{}, decisions: &decisionProver{},
		openBlobs: func(ctx context.Context) (blob.Store, error) { return f.blob.open(ctx, f.data, log) },
	}
	closeAll := func() {
		for _, fn := range slices.Backward(m.closers) {
			fn()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	var nonces store.Ephemeral
	if f.roles != roleVerifier || f.kbs.store != "" {
		spec := f.kbs.store
		if spec == "" {
			spec = filepath.Join(f.data, "kbs.db")
		}
		if m.state, err = openStore(ctx, spec, log); err != nil {
			return nil, fmt.Errorf("store %s: %w", redactURL(spec), err)
		}
		st := m.state
		m.onClose(func() { st.Close() })
		m.ready.AddCheck("store", func(ctx context.Context) error { return pingStore(ctx, st) })
		nonces = st.Ephemeral()
	}
	if m.verifier, err = f.service(ctx, log, iss, nonces); err != nil {
		return nil, err
	}
	m.ready.AddCheck("token-key", func(context.Context) error {
		if len(iss.JWKS()) == 0 {
			return errors.New("no token signing key loaded")
		}
		return nil
	})
	s = &server{ready: m.ready, metrics: m.metrics, close: closeAll}
	for _, r := range roles {
		if err := r.mount(m); err != nil {
			return nil, fmt.Errorf("role %s: %w", r.name, err)
		}
		s.roles = append(s.roles, r.name)
	}
	health := web.Handle(log, nil, func(w http.ResponseWriter, r *http.Request) error {
		return web.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "dev_mode": f.dev, "roles": s.roles})
	})
	m.mux.Handle("GET /healthz", health)
	m.mux.Handle("GET /readyz", m.ready.Handler())
	observe := func(ev web.Event) {
		m.metrics.ObserveRequest(ev)
		if ev.Route == "POST /v1/attestation/verify" {
			outcome := "verified"
			if ev.Status >= 300 {
				outcome = ev.Problem
				if outcome == "" {
					outcome = "error"
				}
			}
			m.metrics.Verification("verifier", outcome)
		}
	}
	if f.metricsAddr == "" {
		m.mux.Handle("GET /metrics", m.metrics.Handler())
	} else {
		aux := http.NewServeMux()
		aux.Handle("GET /metrics", m.metrics.Handler())
		aux.Handle("GET /healthz", health)
		aux.Handle("GET /readyz", m.ready.Handler())
		s.metricsHandler = web.Instrument(log, aux, nil)
	}
	s.handler = web.Instrument(log, m.metrics.InFlight(m.mux), observe)
	return s, nil
}

// mountVerifier mounts the verifier API.
func mountVerifier(m *mountContext) error {
	m.verifier.Register(m.mux, m.log)
	return nil
}

// mountKBS builds the key broker over its store and mounts the KBS
// protocol and the owner API.
func mountKBS(m *mountContext) error {
	k, log := &m.f.kbs, m.log
	kekPath := k.kekFile
	if kekPath == "" {
		kekPath = filepath.Join(m.f.data, "kek")
	}
	key, err := openKEK(kekPath, k.passphraseFile, log)
	if err != nil {
		return err
	}
	ring, err := kek.NewKeyring(key)
	if err != nil {
		return err
	}
	tokens, err := k.trustedKeys(m.ctx, m.issuer)
	if err != nil {
		return err
	}
	st := m.state
	m.kbsStore = st
	var admins *keybroker.Admins
	if k.adminKeys != "" {
		if admins, err = keybroker.LoadAdmins(k.adminKeys, nil); err != nil {
			return usageError{err}
		}
	} else {
		log.Warn("admin API disabled: no --admin-keys")
	}
	b, err := keybroker.New(keybroker.Config{
		Store: st, Ephemeral: st.Ephemeral(), Keys: ring, Tokens: tokens, Attest: m.metrics.Attester(m.verifier), DevMode: m.f.dev,
		Audit: m.metrics.AuditSink(m.audit), ProveDecision: m.decisions.prove, RateLimit: m.f.kbsRateLimit, Logger: log,
		OnPolicyChange: func(ctx context.Context, c *keybroker.PolicyChange) (proof []byte, err error) {
			for _, fn := range m.policyChanges {
				p, err := fn(ctx, c)
				if err != nil {
					return nil, err
				}
				if p != nil {
					proof = p
				}
			}
			return proof, nil
		},
	})
	if err != nil {
		return err
	}
	b.Register(m.mux, admins)
	m.ready.AddCheck("kek", func(context.Context) error {
		if ring == nil {
			return errors.New("no key-encryption key loaded")
		}
		return nil
	})
	return nil
}

// pingStore checks the store answers: Ping when the backend has one, else
// the cheapest indexed read.
func pingStore(ctx context.Context, st store.Store) error {
	if p, ok := st.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	if _, err := st.ListAudit(ctx, math.MaxInt64, 1); err != nil {
		return fmt.Errorf("store unreachable: %w", err)
	}
	return nil
}
