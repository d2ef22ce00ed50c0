// Package server assembles a kura platform server: the roles a deployment
// runs (attestation verifier, key broker, transparency log, coordinator,
// and when named the Prio3 aggregator) over one store, behind one HTTP
// handler with health, readiness and Prometheus metrics. New builds them in
// one fixed order — store, verifier, key broker, log, coordinator,
// aggregator — so this file says what a kura server is;
// `kura serve`, the demo, benchmarks and tests all build servers through it.
//
// The server is an http.Handler and a lifecycle, not a listener: callers
// choose addresses and TLS (see internal/web.Server), and call Close once
// serving has stopped.
//
// # Security model
//
// Every role shares the store (SQLite by default, PostgreSQL for
// replicas), which holds only ciphertext of secrets (sealed under the KEK,
// which never enters it), public collaboration files and short-lived
// records. The verifier's token key, the KEK and the log key are files in
// the data directory, as is the key of the verifier's TPM privacy CA when
// TPM manufacturers are configured (tpm-ak-ca-key.pem, beside its
// certificate tpm-ak-ca.pem), created 0600 if missing and, like a KEK passphrase
// file, refused if group or others can read or write them (internal/keyfile;
// the refusal is logged); the admin keys file is refused if they can write
// it. In dev mode the INSECURE
// simulated TEE is accepted and every token and answer involving it says
// so; never run dev mode in production.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// ErrConfig means the configuration is unusable: an unknown role, a file
// that does not parse, a role without what it needs. The CLI exits 2.
var ErrConfig = fault.New(nil, fault.BadRequest, "server configuration")

// Role is one part of the platform a server can run.
type Role string

// The roles, in the order New builds them.
const (
	// RoleVerifier serves the attestation API (nonce, verify, JWKS).
	RoleVerifier Role = "verifier"
	// RoleKBS serves the key broker: the KBS protocol and the owner API.
	RoleKBS Role = "kbs"
	// RoleLog serves the transparency log, follows the key broker's audit
	// trail and takes clean-room and time-lock entries (auditlog/intake).
	RoleLog Role = "log"
	// RoleCoordinator keeps collaborations and serves the web console
	// (package console) at /console/; it needs RoleLog.
	RoleCoordinator Role = "coordinator"
	// RoleAggregator is a Prio3 aggregator of secret-shared reports
	// (mpc/aggregator), for the tasks Config.Aggregator names. It runs
	// only when named.
	RoleAggregator Role = "aggregator"
)

// AllRoles lists the roles a server runs when none are named, in build
// order.
var AllRoles = []Role{RoleVerifier, RoleKBS, RoleLog, RoleCoordinator}

// knownRoles lists every role in build order.
var knownRoles = []Role{RoleVerifier, RoleKBS, RoleLog, RoleCoordinator, RoleAggregator}

// Config configures a server. Paths left empty default to files in DataDir.
type Config struct {
	// DataDir holds the server's state and keys (created 0700).
	DataDir string
	// Roles are the roles to run, in any order; nil means AllRoles.
	Roles []Role
	// DevMode accepts the INSECURE simulated TEE.
	DevMode bool
	// Version names the build in issued tokens, e.g. "kura v1.2.0".
	Version string
	// Logger receives every security decision (default: discard).
	Logger *slog.Logger

	// TokenKeyFile is the verifier's token signing key, PEM ECDSA P-256 or
	// P-384, created if missing (default <DataDir>/verifier-key.pem).
	TokenKeyFile string
	// Store is the platform's state: a SQLite file path or a postgres://
	// URL (default <DataDir>/kbs.db). The verifier keeps its nonces in
	// memory unless the store is PostgreSQL, where replicas share them.
	Store string
	// Verification configures the built-in verifier.
	Verification Verification
	// KBS configures the key broker role.
	KBS KBS
	// Log configures the transparency-log role.
	Log Log
	// Blobs is where the log role keeps the result bundles and receipts it
	// logged (default: a local store in <DataDir>/blobs).
	Blobs blob.Store
	// SeparateMetrics leaves /metrics off Handler, for a separate listener
	// serving MetricsHandler.
	SeparateMetrics bool
	// MaxDataset bounds one sealed dataset uploaded to the log role's blob
	// store by a key broker tenant (default intake.DefaultMaxDataset).
	MaxDataset int64
	// RunLease is how long a worker's claim on a run lasts unless renewed
	// (default coordinator.DefaultLease).
	RunLease time.Duration
	// Aggregator configures the aggregator role.
	Aggregator Aggregator
	// ConsoleChecks are the web console's WebAssembly programs (kura.wasm
	// and vault.wasm, each possibly gzipped as NAME.gz, and wasm_exec.js);
	// nil means those built into this binary (console.Checks). The console
	// is served at /console/ with the coordinator role, whose
	// collaborations and runs it shows.
	ConsoleChecks fs.FS
	// RateLimit is the requests per second allowed per client address on
	// the platform's writes — every POST and PUT under /v1/: nonces,
	// verifications, log intake, collaboration pushes — with bursts of
	// twice that (0: DefaultRateLimit). The key broker has its own,
	// KBS.RateLimit.
	RateLimit float64
}

// DefaultRateLimit is Config.RateLimit's default.
const DefaultRateLimit = 50

// UploadBudget bounds the request bodies the log intake and the
// coordinator hold in memory at once; an upload beyond it is answered 503
// busy before a byte of it is read.
const UploadBudget = 64 << 20

// KBS configures the key broker role.
type KBS struct {
	// KEKFile is the key-encryption key, created 0600 if missing (default
	// <DataDir>/kek).
	KEKFile string
	// KEKPassphraseFile, if set, derives the KEK with Argon2id from the
	// passphrase in this file; KEKFile then keeps the parameters.
	KEKPassphraseFile string
	// AdminKeysFile lists the owner keys the admin API accepts
	// ("ed25519 <base64> <name>" lines); empty turns the admin API off.
	AdminKeysFile string
	// TrustJWKS are URLs of remote verifiers' JWKS whose tokens the broker
	// also accepts; they are fetched again when a token matches no key.
	TrustJWKS []string
	// HTTP fetches TrustJWKS (default http.DefaultClient): give one that
	// trusts the private CA of verifiers behind one.
	HTTP *http.Client
	// TrustKeys are pinned verifier public keys the broker also accepts.
	TrustKeys jwk.Set
	// RateLimit is the key broker requests per second allowed per client
	// address, burst twice that (0: keybroker's default).
	RateLimit float64
	// Compat is how the KBS protocol endpoints answer: keybroker.CompatKura
	// (the default, also for "") or keybroker.CompatTrustee.
	Compat keybroker.Compat
}

// Log configures the transparency-log role.
type Log struct {
	// KeyFile is the checkpoint signing key (C2SP note key), created if
	// missing with its verifier key beside it as KeyFile.pub (default
	// <DataDir>/log-key).
	KeyFile string
	// Origin is the log's name in checkpoints (default
	// auditlog.DefaultOrigin).
	Origin string
	// Witnesses must cosign each checkpoint; WitnessThreshold of them
	// (0: all).
	Witnesses        []auditlog.WitnessEndpoint
	WitnessThreshold int
}

// Server is a built kura server, ready to serve.
type Server struct {
	handler, metricsHandler http.Handler
	ready                   *web.Readiness
	roles                   []Role
	closers                 []func(context.Context) error
}

// build is the state New passes from one role to the next.
type build struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *metrics
	ready   *web.Readiness
	srv     *Server
	uploads *web.BodyBudget

	issuer   *token.Issuer
	verifier *verifier.Service
	// tokens verifies the tokens of the verifiers this server trusts.
	tokens *token.Verifier
	// admins are the key broker's tenants (nil: no owner API); they
	// alone may upload sealed datasets.
	admins *keybroker.Admins
	// state is the platform's store, nil only for a verifier without one.
	state store.Store
	// broker is set once the key broker is built; the log role follows
	// its audit trail and proves its decisions.
	broker *brokerHooks
	// auditLog is set once the log role is built.
	auditLog *auditlog.Log
}

// New builds the roles cfg names, in the order store → verifier → key
// broker → log → coordinator → aggregator. On error, what was built is closed.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	roles, err := selectRoles(cfg.Roles)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{ready: &web.Readiness{}, roles: roles}
	b := &build{cfg: cfg, log: log, mux: http.NewServeMux(), metrics: newMetrics(), ready: s.ready, srv: s,
		uploads: web.NewBodyBudget(UploadBudget)}
	defer func() {
		if err != nil {
			s.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := b.openStore(ctx, roles); err != nil {
		return nil, err
	}
	if err := b.buildVerifier(ctx); err != nil {
		return nil, err
	}
	for _, r := range roles {
		var err error
		switch r {
		case RoleVerifier:
			b.verifier.Register(b.mux, b.log)
		case RoleKBS:
			err = b.buildKBS(ctx)
		case RoleLog:
			err = b.buildLog(ctx)
		case RoleCoordinator:
			err = b.buildCoordinator(ctx)
		case RoleAggregator:
			err = b.buildAggregator(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("role %s: %w", r, err)
		}
	}
	s.handler, s.metricsHandler = b.handlers(roles)
	return s, nil
}

// selectRoles returns the roles asked for in build order; nil means all.
func selectRoles(want []Role) ([]Role, error) {
	if len(want) == 0 {
		return AllRoles, nil
	}
	for _, r := range want {
		if !slices.Contains(knownRoles, r) {
			return nil, fmt.Errorf("%w: unknown role %q; roles are %s", ErrConfig, r, RoleNames())
		}
	}
	var out []Role
	for _, r := range knownRoles {
		if slices.Contains(want, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// RoleNames lists the roles for messages and help text: "verifier, kbs, ...".
func RoleNames() string {
	names := make([]string, len(knownRoles))
	for i, r := range knownRoles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// onClose registers fn to run when the server closes, in reverse order.
func (b *build) onClose(fn func(context.Context) error) { b.srv.closers = append(b.srv.closers, fn) }

// path returns p, or name inside the data directory when p is empty.
func (b *build) path(p, name string) string {
	if p != "" {
		return p
	}
	return filepath.Join(b.cfg.DataDir, name)
}

// openStore opens the platform's store, unless only the verifier runs and
// no store is configured (its nonces then stay in memory).
func (b *build) openStore(ctx context.Context, roles []Role) error {
	if b.cfg.Store == "" && slices.Equal(roles, []Role{RoleVerifier}) {
		return nil
	}
	spec := b.path(b.cfg.Store, "kbs.db")
	st, err := OpenStore(ctx, spec, b.log)
	if err != nil {
		return fmt.Errorf("store %s: %w", RedactURL(spec), err)
	}
	b.state = st
	b.onClose(func(context.Context) error { return st.Close() })
	b.ready.AddCheck("store", func(ctx context.Context) error { return pingStore(ctx, st) })
	return nil
}

// handlers wraps the roles' routes with health, readiness, metrics and the
// access log.
func (b *build) handlers(roles []Role) (main, aux http.Handler) {
	health := web.Handle(b.log, nil, func(w http.ResponseWriter, r *http.Request) error {
		return web.WriteJSON(w, http.StatusOK, map[string]any{"status": "ok", "dev_mode": b.cfg.DevMode, "roles": roles})
	})
	b.mux.Handle("GET /healthz", health)
	b.mux.Handle("GET /readyz", b.ready.Handler())
	if !b.cfg.SeparateMetrics {
		b.mux.Handle("GET /metrics", b.metrics.Handler())
	}
	observe := func(ev web.Event) {
		b.metrics.ObserveRequest(ev)
		if ev.Route == "POST /v1/attestation/verify" {
			outcome := "verified"
			if ev.Status >= 300 {
				outcome = ev.Problem
				if outcome == "" {
					outcome = "error"
				}
			}
			b.metrics.Verification("verifier", outcome)
		}
	}
	m := http.NewServeMux()
	m.Handle("GET /metrics", b.metrics.Handler())
	m.Handle("GET /healthz", health)
	m.Handle("GET /readyz", b.ready.Handler())
	return web.Instrument(b.log, b.metrics.InFlight(b.limitWrites(b.mux)), observe), web.Instrument(b.log, m, nil)
}

// limitWrites applies the per-client rate limit to every POST and PUT
// under /v1/.
func (b *build) limitWrites(next http.Handler) http.Handler {
	rps := b.cfg.RateLimit
	if rps <= 0 {
		rps = DefaultRateLimit
	}
	l := web.NewLimiter(rps, nil)
	limited := web.Handle(b.log, nil, l.Wrap(func(w http.ResponseWriter, r *http.Request) error {
		next.ServeHTTP(w, r)
		return nil
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(r.URL.Path, "/v1/") {
			limited.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler serves the roles' APIs, /healthz, /readyz and, unless
// SeparateMetrics, /metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler serves /metrics, /healthz and /readyz, for a separate
// metrics listener.
func (s *Server) MetricsHandler() http.Handler { return s.metricsHandler }

// Roles are the roles the server runs, in build order.
func (s *Server) Roles() []Role { return slices.Clone(s.roles) }

// Drain makes /readyz answer 503 with reason, so load balancers stop
// sending traffic before the listener closes.
func (s *Server) Drain(reason string) { s.ready.SetDraining(reason) }

// Close releases what the roles hold, in reverse build order: it stops the
// log's follower of the key broker's audit trail after a final catch-up,
// closes the log and the store. Call it once serving has stopped.
func (s *Server) Close(ctx context.Context) error {
	var errs []error
	for _, fn := range slices.Backward(s.closers) {
		errs = append(errs, fn(ctx))
	}
	s.closers = nil
	return errors.Join(errs...)
}
