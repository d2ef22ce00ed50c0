package coordinator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/veraison/ear"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/token"
)

// The run queue (docs/spec/cleanroom.md §9). A party that may run an
// analysis submits a run; a worker, registered by attesting that its key
// lives in a TEE, claims it for a lease, renews the lease while it runs, and finishes it
// with the digests of the result bundle and receipt it logged. A worker
// that dies lets its lease lapse, and another worker claims the run again
// under the same run id. The queue decides nothing about data: every key
// broker still checks the run's attestation, approvals and limits.

// Signing contexts of the run API.
const (
	// RunSigningContext names run submissions, signed by a party.
	RunSigningContext = "kura-run-v1"
	// WorkerSigningContext names a worker's registration, claims,
	// renewals and finishes, signed by its key; the registration's
	// evidence binds the key under this context too.
	WorkerSigningContext = "kura-worker-v1"
)

// Defaults of the run queue.
const (
	DefaultLease       = 2 * time.Minute
	DefaultMaxAttempts = 3
	maxRunRequest      = 16 << 10
	maxRegisterRequest = 64 << 10
	// DefaultRegistration is how long a worker's registration lasts.
	DefaultRegistration = time.Hour
	maxListed           = 1000 // newest runs GET /v1/runs answers
)

// Runs is where the coordinator keeps the run queue (store.Store
// implements it).
type Runs interface {
	PutRun(ctx context.Context, r *store.Run) error
	GetRun(ctx context.Context, id string) (*store.Run, error)
	ListRuns(ctx context.Context, collaboration string, limit int) ([]store.Run, error)
	ClaimRun(ctx context.Context, worker string, now time.Time, lease time.Duration, maxAttempts int) (*store.Run, error)
	RenewRun(ctx context.Context, id, worker string, until time.Time) error
	FinishRun(ctx context.Context, id, worker, state, result, receipt, errText string) error
}

// WorkerKeyID names a worker's key in request signatures: the hex of the
// first 16 bytes of the SHA-256 of the public key.
func WorkerKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// Tokens verifies attestation tokens (EAR) from the verifiers the server
// trusts (*token.Verifier).
type Tokens interface {
	Verify(ctx context.Context, tok []byte) (*token.Claims, error)
}

// Registrations keeps registered workers until their registration lapses
// (store.Ephemeral implements it).
type Registrations interface {
	Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error)
	Get(ctx context.Context, key string) ([]byte, bool, error)
}

// RegisterRequest is the body of POST /v1/workers: an attestation token
// whose evidence bound the worker's queue key (runtime public key) and
// the context WorkerSigningContext.
type RegisterRequest struct {
	Token string `json:"token"`
}

// Registration is a registered worker, as POST /v1/workers answers and
// the ephemeral store keeps it until Expires.
type Registration struct {
	Name        string    `json:"name"`
	PublicKey   []byte    `json:"public_key"`
	TEE         string    `json:"tee"`
	Measurement string    `json:"measurement,omitempty"`
	Status      string    `json:"status"`
	Expires     time.Time `json:"expires"`
}

// Refusals of worker registration.
var (
	// ErrUnregistered means a worker's key is not registered, or its
	// registration lapsed: register again (401 "unregistered-worker").
	ErrUnregistered = fault.NewCode(httpsig.ErrUnauthenticated, fault.Unauthenticated, "unregistered-worker", "worker not registered")
	// ErrWorkerRefused means a worker's attestation does not let it
	// register (403 "worker-refused").
	ErrWorkerRefused = fault.NewCode(nil, fault.Denied, "worker-refused", "worker refused")
)

func workerRecordKey(id string) string { return "kura-worker/" + id }

// register admits a worker whose key was born in an attested TEE: the
// token must come from a trusted verifier, appraise the evidence as
// affirming or warning, and bind the key that signs this request under
// the worker context. A simulated TEE registers only in dev mode.
func (c *Coordinator) register(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, maxRegisterRequest)
	if err != nil {
		return err
	}
	var req RegisterRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	if c.tokens == nil {
		return fmt.Errorf("%w: this coordinator trusts no verifier, so no worker can register", ErrWorkerRefused)
	}
	claims, err := c.tokens.Verify(r.Context(), []byte(req.Token))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWorkerRefused, err)
	}
	pub := ed25519.PublicKey(claims.RuntimePublicKey)
	if len(pub) != ed25519.PublicKeySize || string(claims.RuntimeContext) != WorkerSigningContext {
		return fmt.Errorf("%w: the token's evidence does not bind an Ed25519 worker key under the context %q", ErrWorkerRefused, WorkerSigningContext)
	}
	if _, err := (&httpsig.Verifier{Context: WorkerSigningContext, Nonces: c.sig.Nonces, Now: c.now}).Verify(r, body, func(id string) (ed25519.PublicKey, bool) {
		return pub, id == WorkerKeyID(pub)
	}); err != nil {
		return err
	}
	cpu, ok := claims.Submods["cpu0"]
	if !ok || (cpu.Status != ear.TrustTierAffirming && cpu.Status != ear.TrustTierWarning) {
		return fmt.Errorf("%w: the verifier's appraisal is %s, want affirming or warning", ErrWorkerRefused, cpu.Status)
	}
	tee, _ := cpu.Evidence["tee"].(string)
	if insecure, _ := cpu.Evidence["insecure"].(bool); insecure && !c.dev {
		return fmt.Errorf("%w: INSECURE: a simulated TEE registers only with a coordinator in dev mode", ErrWorkerRefused)
	}
	id := WorkerKeyID(pub)
	reg := Registration{Name: cmp.Or(tee, "tee") + "-" + id[:8], PublicKey: pub, TEE: tee, Status: cpu.Status.String(),
		Expires: c.now().Add(c.registration).UTC()}
	reg.Measurement, _ = cpu.Evidence["measurement"].(string)
	rec, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	added, err := c.ephemeral.Add(r.Context(), workerRecordKey(id), rec, reg.Expires)
	if err != nil {
		return err
	}
	if !added { // registered already: the live registration stands
		live, ok, err := c.ephemeral.Get(r.Context(), workerRecordKey(id))
		if err != nil {
			return err
		}
		if ok {
			if err := json.Unmarshal(live, &reg); err != nil {
				return err
			}
		}
	}
	c.slog.InfoContext(r.Context(), "worker registered", "worker", reg.Name, "tee", tee, "measurement", reg.Measurement,
		"status", reg.Status, "verifier_key", claims.KeyID, "expires", reg.Expires)
	return web.WriteJSON(w, http.StatusOK, reg)
}

// RunStatus is a run as the API shows it.
type RunStatus struct {
	ID            string    `json:"id"`
	Collaboration string    `json:"collaboration"`
	Analysis      string    `json:"analysis"`
	SubmittedBy   string    `json:"submitted_by"`
	SubmittedAt   time.Time `json:"submitted_at"`
	State         string    `json:"state"`
	Worker        string    `json:"worker,omitempty"`
	Attempts      int       `json:"attempts"`
	Result        string    `json:"result,omitempty"`
	Receipt       string    `json:"receipt,omitempty"`
	Error         string    `json:"error,omitempty"`
	UpdatedAt     time.Time `json:"updated_at"`
}

func statusOf(r *store.Run) *RunStatus {
	return &RunStatus{ID: r.ID, Collaboration: r.Collaboration, Analysis: r.Analysis, SubmittedBy: r.SubmittedBy,
		SubmittedAt: r.SubmittedAt, State: r.State, Worker: r.Worker, Attempts: r.Attempts, Result: r.Result,
		Receipt: r.Receipt, Error: r.Error, UpdatedAt: r.UpdatedAt}
}

// SubmitRequest is the body of POST /v1/runs.
type SubmitRequest struct {
	Collaboration string `json:"collaboration"`
	Analysis      string `json:"analysis"`
}

// FinishRequest is the body of POST /v1/runs/{id}/finish.
type FinishRequest struct {
	State   string `json:"state"` // completed or failed
	Result  string `json:"result,omitempty"`
	Receipt string `json:"receipt,omitempty"`
	Error   string `json:"error,omitempty"`
}

// registerRuns mounts the run API.
func (c *Coordinator) registerRuns(mux *http.ServeMux) {
	h := func(f web.HandlerFunc) http.Handler { return web.Handle(c.slog, nil, f) }
	mux.Handle("POST /v1/runs", h(c.submit))
	mux.Handle("GET /v1/runs", h(c.listRuns))
	mux.Handle("GET /v1/runs/{id}", h(c.getRun))
	mux.Handle("POST /v1/workers", h(c.register))
	mux.Handle("POST /v1/runs/claim", h(c.claim))
	mux.Handle("POST /v1/runs/{id}/renew", h(c.renew))
	mux.Handle("POST /v1/runs/{id}/finish", h(c.finish))
}

func decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", fault.BadRequest, err)
	}
	return nil
}

// submit queues a run of an analysis, for a party the manifest lets run
// it: an analyst, or an owner of a dataset it reads. Every owner whose
// data it reads must have approved the current version, and not revoked
// that approval (409 approval-revoked, naming the owner): the key brokers
// would refuse such a run after it attested.
func (c *Coordinator) submit(w http.ResponseWriter, r *http.Request) error {
	if !strings.HasPrefix(r.Header.Get("Authorization"), httpsig.Scheme+" ") {
		return fmt.Errorf("%w: a run is submitted signed by a party (kura run submit --identity)", httpsig.ErrUnauthenticated)
	}
	body, err := web.ReadBody(w, r, maxRunRequest)
	if err != nil {
		return err
	}
	var req SubmitRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	file, _, err := c.store.GetCollaboration(r.Context(), req.Collaboration)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no collaboration %q: push it first", err, req.Collaboration)
	}
	if err != nil {
		return err
	}
	col, err := collab.ParseCollaboration(file)
	if err != nil {
		return fmt.Errorf("stored collaboration %s: %w", req.Collaboration, err)
	}
	m := col.Current()
	an := m.Analysis(req.Analysis)
	parties := map[string]*collab.Party{}
	for i := range m.Parties {
		parties[m.Parties[i].Card.Fingerprint] = &m.Parties[i]
	}
	by, err := (&httpsig.Verifier{Context: RunSigningContext, Nonces: c.sig.Nonces, Now: c.now}).Verify(r, body, func(id string) (ed25519.PublicKey, bool) {
		p, ok := parties[id]
		if !ok {
			return nil, false
		}
		return p.Card.SigningKey, true
	})
	if err != nil {
		return err
	}
	if an == nil {
		return fmt.Errorf("%w: analysis %q is not in collaboration %s version %d", ErrRefused, req.Analysis, col.ID, len(col.Versions))
	}
	p := parties[by]
	owners := map[string]bool{}
	for _, id := range collab.ReadsOf(an) {
		if d := m.Dataset(id); d != nil {
			owners[d.Owner] = true
		}
	}
	if !p.HasRole(collab.RoleAnalyst) && !owners[p.Name] {
		return fmt.Errorf("%w: %s is neither an analyst nor an owner of the data analysis %q reads", ErrNotAllowed, p.Name, an.ID)
	}
	for _, owner := range slices.Sorted(maps.Keys(owners)) { // the same refusal every time
		if err := col.CheckApproved(ed25519.PublicKey(m.Party(owner).Card.SigningKey), an.ID); err != nil {
			if errors.Is(err, collab.ErrRevoked) {
				c.slog.WarnContext(r.Context(), "run refused: approval revoked", "collaboration", col.ID, "analysis", an.ID, "owner", owner, "by", p.Name)
				return fmt.Errorf("%w: %w", ErrRevoked, err)
			}
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	if err := c.checkLimits(r.Context(), m, an); err != nil {
		return err
	}
	run := &store.Run{ID: collab.NewRunID(), Collaboration: col.ID, Analysis: an.ID, SubmittedBy: by}
	if err := c.runs.PutRun(r.Context(), run); err != nil {
		return err
	}
	c.slog.InfoContext(r.Context(), "run submitted", "run_id", run.ID, "collaboration", col.ID, "analysis", an.ID, "by", p.Name)
	stored, err := c.runs.GetRun(r.Context(), run.ID)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusCreated, statusOf(stored))
}

// ErrNotAllowed means a party may not submit a run of that analysis
// (403 "not-allowed").
var ErrNotAllowed = fault.NewCode(nil, fault.Denied, "not-allowed", "not allowed to run this analysis")

// ErrLimit means the manifest's approvals lapsed or the analysis's run
// limit is reached (403 "run-limit").
var ErrLimit = fault.NewCode(nil, fault.Denied, "run-limit", "run refused by the manifest's limits")

// checkLimits refuses a run the key brokers would refuse for the
// manifest's expiry or the analysis's max_runs, so that it fails at
// submission rather than after a worker attested. The brokers' check is
// the one that counts: they count runs that received keys; this one
// counts the queue's runs of the analysis that did not fail.
func (c *Coordinator) checkLimits(ctx context.Context, m *collab.Manifest, an *collab.Analysis) error {
	if t, ok := m.ExpiresAt(); ok && !c.now().Before(t) {
		return fmt.Errorf("%w: the approvals of collaboration %s lapsed at %s: its parties must approve a new version", ErrLimit, m.ID, m.Expires)
	}
	if an.MaxRuns <= 0 {
		return nil
	}
	runs, err := c.runs.ListRuns(ctx, m.ID, maxListed)
	if err != nil {
		return err
	}
	n := 0
	for _, r := range runs {
		if r.Analysis == an.ID && r.State != store.RunFailed {
			n++
		}
	}
	if n >= an.MaxRuns {
		return fmt.Errorf("%w: analysis %q allows %d runs and %d are queued, running or completed", ErrLimit, an.ID, an.MaxRuns, n)
	}
	return nil
}

func (c *Coordinator) getRun(w http.ResponseWriter, r *http.Request) error {
	run, err := c.runs.GetRun(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no such run", err)
	}
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, statusOf(run))
}

func (c *Coordinator) listRuns(w http.ResponseWriter, r *http.Request) error {
	id := r.URL.Query().Get("collaboration")
	if id == "" {
		return fmt.Errorf("%w: name the collaboration whose runs to list (?collaboration=ID)", fault.BadRequest)
	}
	runs, err := c.runs.ListRuns(r.Context(), id, maxListed)
	if err != nil {
		return err
	}
	out := struct {
		Runs []*RunStatus `json:"runs"`
	}{Runs: []*RunStatus{}}
	for i := range runs {
		out.Runs = append(out.Runs, statusOf(&runs[i]))
	}
	return web.WriteJSON(w, http.StatusOK, out)
}

// worker reads a registered worker's request body, authenticates it and
// returns the body and the worker's name.
func (c *Coordinator) worker(w http.ResponseWriter, r *http.Request) ([]byte, string, error) {
	body, err := web.ReadBody(w, r, maxRunRequest)
	if err != nil {
		return nil, "", err
	}
	var reg Registration
	if _, err := (&httpsig.Verifier{Context: WorkerSigningContext, Nonces: c.sig.Nonces, Now: c.now}).Verify(r, body, func(id string) (ed25519.PublicKey, bool) {
		rec, ok, err := c.ephemeral.Get(r.Context(), workerRecordKey(id))
		if err != nil || !ok || json.Unmarshal(rec, &reg) != nil {
			return nil, false
		}
		return reg.PublicKey, true
	}); err != nil {
		if reg.Name == "" {
			return nil, "", fmt.Errorf("%w: register with POST /v1/workers (kura worker serve does): %w", ErrUnregistered, err)
		}
		return nil, "", err
	}
	return body, reg.Name, nil
}

func (c *Coordinator) claim(w http.ResponseWriter, r *http.Request) error {
	_, name, err := c.worker(w, r)
	if err != nil {
		return err
	}
	run, err := c.runs.ClaimRun(r.Context(), name, c.now(), c.lease, c.maxAttempts)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	c.slog.InfoContext(r.Context(), "run claimed", "run_id", run.ID, "worker", name, "attempt", run.Attempts)
	return web.WriteJSON(w, http.StatusOK, statusOf(run))
}

func (c *Coordinator) renew(w http.ResponseWriter, r *http.Request) error {
	_, name, err := c.worker(w, r)
	if err != nil {
		return err
	}
	if err := c.runs.RenewRun(r.Context(), r.PathValue("id"), name, c.now().Add(c.lease)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (c *Coordinator) finish(w http.ResponseWriter, r *http.Request) error {
	body, name, err := c.worker(w, r)
	if err != nil {
		return err
	}
	var req FinishRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := c.runs.FinishRun(r.Context(), id, name, req.State, req.Result, req.Receipt, req.Error); err != nil {
		return err
	}
	c.slog.InfoContext(r.Context(), "run finished", "run_id", id, "worker", name, "state", req.State, "error", req.Error)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
