// Package coordinator keeps clean-room collaborations: it serves
// PUT and GET /v1/collaborations/{id} (docs/spec/manifest.md §6), storing
// every version of each collaboration file in the platform's store and
// recording every new manifest version, approval and revocation in the
// transparency log before storing it. POST
// /v1/collaborations/{id}/revocations adds a party's signed revocation of
// its approval (docs/spec/manifest.md §5.4) to the stored file.
//
// # Security model
//
// The coordinator holds no secret and decides nothing about data: key
// brokers and receivers check manifests and approvals themselves. What it
// guarantees is publicity and order: a file is accepted only if it verifies
// (every signature, every hash link) and extends the stored one (the same
// versions first, no approval or revocation dropped), so the history it
// serves is append-only and every step of it is in the log. A compromised
// coordinator can refuse service or serve a stale file; it cannot forge an
// approval, and a file it serves that the log does not hold is evidence
// against it. Nor can it undo a revocation: the key brokers holding the
// revoking party's keys keep their own copy and enforce it; the run queue
// refusing the party's runs (409 approval-revoked) only saves a worker
// the attestation. A revocation needs no push signature: it is signed by
// its party, and is accepted only if it verifies under that party's card.
//
// Every version a push adds passes analysis.Check, the static check of
// its analyses that kura collab create and approve run: a manifest whose
// custom SQL could output identities or read files is refused (400
// unsafe-analysis) before it is stored or logged.
//
// A collaboration id belongs to its parties: every push is signed
// (internal/httpsig, context "kura-collab-v1") by the signing key of a
// party of a stored version — for a new id, of the pushed file's first
// version — so no one else can create, squat or extend it. Whoever
// creates an id is logged with it; a party that finds its id taken by a
// collaboration it is not in uses another id.
//
// Replicas sharing a PostgreSQL store may race on one collaboration: the
// store accepts one version n+1 and the loser answers 409 (fetch and push
// again). The loser's new entries may already be logged: the log holds
// every stored version and approval, and can hold one whose store write
// then failed (as after a crash between the two).
package coordinator

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// ErrRefused means a collaboration file was refused: it does not verify,
// names another collaboration than its URL, or does not extend the stored
// file. The HTTP API answers 409 collaboration-refused.
var ErrRefused = fault.NewCode(nil, fault.Conflict, "collaboration-refused", "collaboration refused")

// Collaborations is where the coordinator keeps collaboration files
// (store.Store implements it).
type Collaborations interface {
	// GetCollaboration returns the latest file and its version, or
	// store.ErrNotFound.
	GetCollaboration(ctx context.Context, id string) ([]byte, int64, error)
	// PutCollaboration stores version, which must be one more than the
	// latest, or fails with store.ErrConflict.
	PutCollaboration(ctx context.Context, id string, file []byte, version int64) error
}

// SigningContext names the coordinator's API in push signatures.
const SigningContext = collab.PushSigningContext

// Log is the transparency log the coordinator records in (*auditlog.Log
// implements it).
type Log interface {
	AppendAndProve(ctx context.Context, e *auditlog.Entry) (*auditlog.Proof, error)
}

// Config configures a Coordinator.
type Config struct {
	// Store keeps the collaboration files. Required.
	Store Collaborations
	// Log records every new manifest version and approval. Required.
	Log Log
	// Nonces remembers the nonces of signed pushes, shared by replicas
	// (store.Ephemeral implements it). Required.
	Nonces httpsig.Nonces
	// Uploads bounds the request bodies held in memory at once (default:
	// a budget of its own of 16 MiB).
	Uploads *web.BodyBudget
	// Runs keeps the run queue; nil serves no run API. With it,
	// Registrations is required.
	Runs Runs
	// Registrations keeps registered workers, shared by replicas
	// (store.Ephemeral implements it).
	Registrations Registrations
	// Tokens verifies the attestation tokens workers register with; nil
	// registers none.
	Tokens Tokens
	// DevMode lets workers in the INSECURE simulated TEE register.
	DevMode bool
	// Registration is how long a worker's registration lasts (default
	// DefaultRegistration); Lease how long a claim lasts unless renewed
	// (default DefaultLease); MaxAttempts how many claims a run gets
	// before it fails (default DefaultMaxAttempts).
	Registration time.Duration
	Lease        time.Duration
	MaxAttempts  int
	// Now is the clock stamped on log entries (default time.Now).
	Now func() time.Time
	// Logger receives request failures (default: discard).
	Logger *slog.Logger
}

// Coordinator is the collaboration service. It is safe for concurrent use.
type Coordinator struct {
	store        Collaborations
	log          Log
	sig          *httpsig.Verifier
	uploads      *web.BodyBudget
	runs         Runs
	ephemeral    Registrations
	tokens       Tokens
	dev          bool
	registration time.Duration
	lease        time.Duration
	maxAttempts  int
	now          func() time.Time
	slog         *slog.Logger
	mu           sync.Mutex // serialises this process's updates
}

// New returns a coordinator.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Store == nil || cfg.Log == nil || cfg.Nonces == nil {
		return nil, errors.New("coordinator: Store, Log and Nonces are required")
	}
	if cfg.Runs != nil && cfg.Registrations == nil {
		return nil, errors.New("coordinator: a run queue needs Registrations")
	}
	c := &Coordinator{store: cfg.Store, log: cfg.Log, uploads: cfg.Uploads, now: cfg.Now, slog: cfg.Logger,
		runs: cfg.Runs, ephemeral: cfg.Registrations, tokens: cfg.Tokens, dev: cfg.DevMode,
		registration: cmp.Or(cfg.Registration, DefaultRegistration), lease: cmp.Or(cfg.Lease, DefaultLease),
		maxAttempts: cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts)}
	if c.now == nil {
		c.now = time.Now
	}
	if c.uploads == nil {
		c.uploads = web.NewBodyBudget(4 * collab.MaxCollaborationSize)
	}
	c.sig = &httpsig.Verifier{Context: SigningContext, Nonces: cfg.Nonces, Now: c.now}
	if c.slog == nil {
		c.slog = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Register mounts PUT and GET /v1/collaborations/{id} on mux, and with
// Runs the run API: /v1/runs and /v1/workers.
func (c *Coordinator) Register(mux *http.ServeMux) {
	mux.Handle("PUT /v1/collaborations/{id}", web.Handle(c.slog, nil, c.uploads.Limit(collab.MaxCollaborationSize, c.put)))
	mux.Handle("GET /v1/collaborations/{id}", web.Handle(c.slog, nil, c.get))
	mux.Handle("POST /v1/collaborations/{id}/revocations", web.Handle(c.slog, nil, c.uploads.Limit(collab.MaxRevocationSize, c.revoke)))
	if c.runs != nil {
		c.registerRuns(mux)
	}
}

func (c *Coordinator) get(w http.ResponseWriter, r *http.Request) error {
	file, _, err := c.store.GetCollaboration(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no such collaboration", err)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(file)
	return err
}

// PutResponse says what a collaboration update added to the log.
type PutResponse struct {
	// Versions, Approvals and Revocations count what the stored file now
	// holds.
	Versions    int `json:"versions"`
	Approvals   int `json:"approvals"`
	Revocations int `json:"revocations,omitempty"`
	// Logged are the inclusion proofs of the new log entries, in order.
	Logged []json.RawMessage `json:"logged"`
}

func (c *Coordinator) put(w http.ResponseWriter, r *http.Request) error {
	if !strings.HasPrefix(r.Header.Get("Authorization"), httpsig.Scheme+" ") {
		return fmt.Errorf("%w: a push must be signed by a party of the collaboration (kura collab push --identity)", httpsig.ErrUnauthenticated)
	}
	body, err := web.ReadBody(w, r, collab.MaxCollaborationSize)
	if err != nil {
		return err
	}
	next, err := collab.ParseCollaboration(body)
	if err != nil {
		return err
	}
	if next.ID != r.PathValue("id") {
		return fmt.Errorf("%w: the file is collaboration %q, the URL says %q", ErrRefused, next.ID, r.PathValue("id"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var prev *collab.Collaboration
	data, version, err := c.store.GetCollaboration(r.Context(), next.ID)
	switch {
	case err == nil:
		if prev, err = collab.ParseCollaboration(data); err != nil {
			return fmt.Errorf("stored collaboration %s: %w", next.ID, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	by, err := c.sig.Verify(r, body, partyKeys(prev, next))
	if err != nil {
		return err
	}
	if err := next.Verify(); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	newVersions, newApprovals, newRevocations, err := extends(prev, next)
	if err != nil {
		return err
	}
	for _, n := range newVersions {
		// The analyses are checked before anyone signs them (kura collab
		// create/approve); a coordinator refuses a version that skipped it.
		if err := analysis.Check(r.Context(), next.Version(n)); err != nil {
			return fmt.Errorf("version %d: %w", n, err)
		}
	}
	if err := checkTimes(newRevocations, c.now()); err != nil {
		return err
	}
	resp := PutResponse{Versions: len(next.Versions), Approvals: len(next.Approvals), Revocations: len(next.Revocations)}
	if len(newVersions) == 0 && len(newApprovals) == 0 && len(newRevocations) == 0 {
		return web.WriteJSON(w, http.StatusOK, resp) // nothing new: stored and logged already
	}
	c.slog.InfoContext(r.Context(), "collaboration pushed", "collaboration", next.ID, "by", by,
		"new_versions", len(newVersions), "new_approvals", len(newApprovals), "new_revocations", len(newRevocations), "created", prev == nil)
	now := c.now().UTC()
	for _, n := range newVersions {
		m := next.Version(n)
		e := &auditlog.Entry{Kind: auditlog.KindManifestVersion, Time: now, Collaboration: next.ID,
			Subject: "sha256:" + m.Hash(), Version: uint64(n)}
		if m.Previous != "" {
			e.Previous = "sha256:" + m.Previous
		}
		if err := c.append(r.Context(), e, &resp); err != nil {
			return err
		}
	}
	for _, a := range newApprovals {
		p := next.Version(a.Version).Party(a.Party)
		sum := sha256.Sum256(a.Signature)
		e := &auditlog.Entry{Kind: auditlog.KindApproval, Time: now, Collaboration: next.ID, Party: p.Card.Fingerprint,
			Subject: auditlog.Digest(sum), Version: uint64(a.Version)}
		if err := c.append(r.Context(), e, &resp); err != nil {
			return err
		}
	}
	for _, rev := range newRevocations {
		if err := c.logRevocation(r.Context(), next, rev, now, &resp); err != nil {
			return err
		}
	}
	err = c.store.PutCollaboration(r.Context(), next.ID, body, version+1)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: the collaboration changed while this update was checked: fetch it and push again", err)
	}
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, resp)
}

func (c *Coordinator) append(ctx context.Context, e *auditlog.Entry, resp *PutResponse) error {
	p, err := c.log.AppendAndProve(ctx, e)
	if err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	resp.Logged = append(resp.Logged, data)
	return nil
}

// partyKeys returns the signing keys that may push: those of the parties
// of every stored version, or for a new collaboration those of the pushed
// file's first version, by card fingerprint.
func partyKeys(prev, next *collab.Collaboration) func(string) (ed25519.PublicKey, bool) {
	keys := map[string]ed25519.PublicKey{}
	versions := next.Versions[:1]
	if prev != nil {
		versions = prev.Versions
	}
	for _, m := range versions {
		for _, p := range m.Parties {
			keys[p.Card.Fingerprint] = p.Card.SigningKey
		}
	}
	return func(id string) (ed25519.PublicKey, bool) {
		k, ok := keys[id]
		return k, ok
	}
}

// extends checks that next keeps everything prev had (its versions first,
// every approval, every revocation) and returns what is new: version
// numbers, approvals and revocations. A stored approval may give way to
// a later one by the same party of the same version (a party approving
// again after revoking): both are in the log.
func extends(prev, next *collab.Collaboration) ([]int, []*collab.Approval, []*collab.Revocation, error) {
	have := map[string]*collab.Approval{}
	revoked := map[string]bool{}
	from := 1
	if prev != nil {
		if len(next.Versions) < len(prev.Versions) {
			return nil, nil, nil, fmt.Errorf("%w: it has %d versions, the stored one %d: history only grows", ErrRefused, len(next.Versions), len(prev.Versions))
		}
		for i, v := range prev.Versions {
			if next.Versions[i].Hash() != v.Hash() {
				return nil, nil, nil, fmt.Errorf("%w: version %d differs from the stored one: history is append-only", ErrRefused, i+1)
			}
		}
		for _, a := range prev.Approvals {
			have[string(a.Signature)] = a
		}
		for _, r := range prev.Revocations {
			revoked[string(r.Signature)] = true
		}
		from = len(prev.Versions) + 1
	}
	var versions []int
	for n := from; n <= len(next.Versions); n++ {
		versions = append(versions, n)
	}
	var approvals []*collab.Approval
	for _, a := range next.Approvals {
		if have[string(a.Signature)] != nil {
			delete(have, string(a.Signature))
			continue
		}
		approvals = append(approvals, a)
	}
	dropped := 0
	for _, old := range have {
		if !slices.ContainsFunc(approvals, func(a *collab.Approval) bool {
			return a.Party == old.Party && a.Version == old.Version && a.SignedAt.After(old.SignedAt)
		}) {
			dropped++
		}
	}
	if dropped > 0 {
		return nil, nil, nil, fmt.Errorf("%w: it drops %d stored approval(s)", ErrRefused, dropped)
	}
	var revocations []*collab.Revocation
	kept := 0
	for _, r := range next.Revocations {
		if revoked[string(r.Signature)] {
			kept++
			continue
		}
		revocations = append(revocations, r)
	}
	if kept < len(revoked) {
		return nil, nil, nil, fmt.Errorf("%w: it drops %d stored revocation(s): a revocation stands until its party approves again", ErrRefused, len(revoked)-kept)
	}
	return versions, approvals, revocations, nil
}
