package keybroker

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/token"
)

// ErrKeyBroker is the family of this package's sentinels: every one wraps
// it and carries its kind of failure (internal/fault), by which
// internal/web answers with the KBS protocol's status codes.
var ErrKeyBroker = errors.New("key broker failed")

// Sentinel errors, with their HTTP status and problem type.
var (
	// ErrUnauthenticated means the request carries no valid session or
	// token (401 "unauthenticated").
	ErrUnauthenticated = fault.New(ErrKeyBroker, fault.Unauthenticated, "not authenticated")
	// ErrDenied means the release policy refused the request (403
	// "policy-denied").
	ErrDenied = fault.New(ErrKeyBroker, fault.Denied, "release denied by policy")
	// ErrNotFound means no such resource (404 "resource-not-found").
	ErrNotFound = fault.NewCode(ErrKeyBroker, fault.NotFound, "resource-not-found", "resource not found")
	// ErrBadRequest means the request is malformed (400 "bad-request").
	ErrBadRequest = fault.New(ErrKeyBroker, fault.BadRequest, "bad request")
	// ErrRateLimited means the client sent too many requests (429
	// "rate-limited").
	ErrRateLimited = fault.New(ErrKeyBroker, fault.RateLimited, "rate limited")
)

// MaxResourceSize bounds one stored secret.
const MaxResourceSize = 1 << 20

// Config configures a Broker.
type Config struct {
	// Store holds sealed resources, policies and the audit trail.
	Store store.Store
	// Keys wraps resource DEKs: the current KEK wraps, any KEK in the ring
	// unwraps.
	Keys *kek.Keyring
	// Tokens verifies attestation tokens from the verifiers this broker
	// trusts (kura's, in-process or remote, and any configured by JWKS).
	Tokens *token.Verifier
	// Attest verifies evidence for the KBS attest endpoint, typically an
	// in-process kura verifier. Nil disables /kbs/v0/attest: clients then
	// present tokens from a remote verifier as Bearer tokens.
	Attest Attester
	// MaxTokenAge refuses tokens issued longer ago than this, even if not
	// expired. Zero means 10 minutes.
	MaxTokenAge time.Duration
	// DevMode lets the default policy release to the INSECURE sim TEE, and
	// /kbs/v0/attest accept Trustee's unsigned sample evidence.
	DevMode bool
	// Compat is how the KBS protocol endpoints answer: CompatKura (the
	// default, also for "") or CompatTrustee.
	Compat Compat
	// Audit receives every decision after it is stored, e.g. the
	// transparency log. Nil means none.
	Audit AuditSink
	// OnPolicyChange is told of every release-policy version stored, e.g.
	// to record it in the transparency log, and returns the inclusion proof
	// (JSON, docs/spec/auditlog.md §5) of the entry it made, or nil; an
	// error fails SetPolicy (after the store) with a message saying so. Nil
	// means none.
	OnPolicyChange func(ctx context.Context, c *PolicyChange) (logProof []byte, err error)
	// ProveDecision returns the transparency-log inclusion proof (JSON,
	// docs/spec/auditlog.md §5) of the decision with audit sequence number
	// seq, waiting until it is logged; resource requests asking for one
	// with AuditProofHeader get it in their answer. Nil means no log.
	ProveDecision func(ctx context.Context, seq int64) ([]byte, error)
	// Sessions bounds KBS sessions: their lifetime (zero: 5 minutes) and
	// number (zero: 100000; with Ephemeral, the store's bound applies and
	// MaxSessions bounds only this process's cache of attested sessions).
	SessionTTL  time.Duration
	MaxSessions int
	// Ephemeral keeps KBS sessions and the owner API's replay cache. Nil
	// keeps them in this process's memory; replicas sharing a store's
	// Ephemeral serve each other's sessions.
	Ephemeral store.Ephemeral
	// RateLimit is the sustained requests per second allowed per client
	// address, with a burst of 2x; zero means 200.
	RateLimit float64
	Now       func() time.Time
	Logger    *slog.Logger
}

// AuditSink receives release decisions, e.g. the transparency log.
type AuditSink interface {
	Record(ctx context.Context, rec *store.AuditRecord) error
}

// Broker is a key broker. It is safe for concurrent use.
type Broker struct {
	store       store.Store
	runMu       sync.Mutex // serialises run releases (checkRunLimits)
	keys        *kek.Keyring
	tokens      *token.Verifier
	attest      Attester
	maxTokenAge time.Duration
	devMode     bool
	compat      Compat
	audit       AuditSink
	onPolicy    func(ctx context.Context, c *PolicyChange) ([]byte, error)
	prove       func(ctx context.Context, seq int64) ([]byte, error)
	policies    *policies
	stored      *storeCache[string]          // release policies by scope
	resources   *storeCache[*store.Resource] // latest resource versions by path
	verified    *tokenCache
	ephemeral   store.Ephemeral
	sessions    *sessions
	limiter     *web.Limiter
	now         func() time.Time
	log         *slog.Logger
}

// New returns a Broker.
func New(cfg Config) (*Broker, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("keybroker: Store and Keys are required")
	}
	if cfg.Tokens == nil {
		return nil, errors.New("keybroker: no trusted verifier keys: configure at least one verifier")
	}
	compat, err := ParseCompat(string(cfg.Compat))
	if err != nil {
		return nil, fmt.Errorf("keybroker: %w", err)
	}
	b := &Broker{
		store: cfg.Store, keys: cfg.Keys, tokens: cfg.Tokens, attest: cfg.Attest,
		maxTokenAge: cfg.MaxTokenAge, devMode: cfg.DevMode, compat: compat, audit: cfg.Audit, onPolicy: cfg.OnPolicyChange, prove: cfg.ProveDecision,
		policies: newPolicies(), now: cfg.Now, log: cfg.Logger,
		verified: &tokenCache{m: map[[32]byte]*Attested{}},
	}
	if b.maxTokenAge == 0 {
		b.maxTokenAge = 10 * time.Minute
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	ttl, max := cfg.SessionTTL, cfg.MaxSessions
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	if max == 0 {
		max = 100000
	}
	if b.ephemeral = cfg.Ephemeral; b.ephemeral == nil {
		b.ephemeral = store.NewMemoryEphemeral(2*max+10000, b.now) // a session is two records; admin nonces
	}
	b.sessions = newSessions(ttl, max, b.now, b.ephemeral)
	b.stored = newStoreCache(b.now, func(ctx context.Context, scope string) (string, error) {
		p, err := b.store.GetPolicy(ctx, scope)
		if err != nil {
			return "", err
		}
		return p.Rego, nil
	})
	b.resources = newStoreCache(b.now, b.store.GetResource)
	rl := cfg.RateLimit
	if rl == 0 {
		rl = 200
	}
	b.limiter = web.NewLimiter(rl, b.now)
	return b, nil
}

// ParsePath splits and validates a resource path "repository/type/tag".
func ParsePath(p string) (RequestView, error) {
	if err := store.ValidatePath(p); err != nil {
		return RequestView{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	parts := strings.Split(p, "/")
	return RequestView{Resource: p, Repository: parts[0], Type: parts[1], Tag: parts[2]}, nil
}

// sealAAD binds a sealed value and its wrapped DEK to the resource path.
func sealAAD(path string) []byte { return []byte("kura/keybroker/resource/v1\x00" + path) }

// seal encrypts value under a fresh DEK and wraps the DEK with the current KEK.
func (b *Broker) seal(ctx context.Context, path string, value []byte) (sealed, wrapped []byte, kekID string, err error) {
	dek := make([]byte, 32)
	rand.Read(dek)
	defer clear(dek)
	aead, err := newGCM(dek)
	if err != nil {
		return nil, nil, "", err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	sealed = aead.Seal(nonce, nonce, value, sealAAD(path))
	if wrapped, kekID, err = b.keys.Wrap(ctx, dek, sealAAD(path)); err != nil {
		return nil, nil, "", fmt.Errorf("wrap DEK: %w", err)
	}
	return sealed, wrapped, kekID, nil
}

// unseal reverses seal.
func (b *Broker) unseal(ctx context.Context, r *store.Resource) ([]byte, error) {
	dek, err := b.keys.Unwrap(ctx, r.KEKID, r.WrappedDEK, sealAAD(r.Path))
	if err != nil {
		return nil, fmt.Errorf("unwrap DEK of %s v%d: %w", r.Path, r.Version, err)
	}
	defer clear(dek)
	aead, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	if len(r.Sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("sealed value of %s v%d is truncated", r.Path, r.Version)
	}
	n := aead.NonceSize()
	value, err := aead.Open(nil, r.Sealed[:n], r.Sealed[n:], sealAAD(r.Path))
	if err != nil {
		return nil, fmt.Errorf("sealed value of %s v%d does not authenticate: %w", r.Path, r.Version, err)
	}
	return value, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Put stores a new version of a resource, sealed. by names the admin.
func (b *Broker) Put(ctx context.Context, path string, value []byte, meta map[string]string, policyID, by string) (int64, error) {
	if _, err := ParsePath(path); err != nil {
		return 0, err
	}
	if len(value) > MaxResourceSize {
		return 0, fmt.Errorf("%w: resource is %d bytes, limit is %d", ErrBadRequest, len(value), MaxResourceSize)
	}
	sealed, wrapped, kekID, err := b.seal(ctx, path, value)
	if err != nil {
		return 0, err
	}
	v, err := b.store.PutResource(ctx, &store.Resource{
		Path: path, Sealed: sealed, WrappedDEK: wrapped, KEKID: kekID,
		CreatedAt: b.now().UTC(), CreatedBy: by, PolicyID: policyID, Metadata: meta,
	})
	b.resources.forget(path)
	if err != nil {
		return 0, err
	}
	b.log.InfoContext(ctx, "resource stored", "resource", path, "version", v, "by", by, "kek", kekID)
	return v, nil
}

// Delete records a tombstone for a resource.
func (b *Broker) Delete(ctx context.Context, path, by string) (int64, error) {
	if _, err := ParsePath(path); err != nil {
		return 0, err
	}
	v, err := b.store.DeleteResource(ctx, path, by)
	b.resources.forget(path)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err == nil {
		b.log.InfoContext(ctx, "resource deleted", "resource", path, "version", v, "by", by)
	}
	return v, err
}

// Meta is what owners may read about a resource: never its value.
type Meta struct {
	Path      string            `json:"path"`
	Version   int64             `json:"version"`
	CreatedAt time.Time         `json:"created_at"`
	CreatedBy string            `json:"created_by"`
	PolicyID  string            `json:"policy,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	KEKID     string            `json:"kek_id,omitempty"`
	// Digest is SHA-256 of the sealed value: it changes with every write
	// and reveals nothing about the plaintext.
	Digest string `json:"sealed_sha256,omitempty"`
}

func metaOf(r *store.Resource) Meta {
	m := Meta{Path: r.Path, Version: r.Version, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy, PolicyID: r.PolicyID, Metadata: r.Metadata, KEKID: r.KEKID}
	if len(r.Sealed) > 0 {
		sum := sha256.Sum256(r.Sealed)
		m.Digest = hex.EncodeToString(sum[:])
	}
	return m
}

// Get returns a resource's metadata.
func (b *Broker) Get(ctx context.Context, path string) (*Meta, error) {
	if _, err := ParsePath(path); err != nil {
		return nil, err
	}
	r, err := b.store.GetResource(ctx, path)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, path)
	}
	if err != nil {
		return nil, err
	}
	m := metaOf(r)
	return &m, nil
}

// List returns the metadata of every live resource under prefix.
func (b *Broker) List(ctx context.Context, prefix string) ([]Meta, error) {
	rs, err := b.store.ListResources(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]Meta, len(rs))
	for i := range rs {
		out[i] = metaOf(&rs[i])
	}
	return out, nil
}

// PolicyScope checks where a release policy applies: "default",
// "repo/<repository>" or "resource/<repository>/<type>/<tag>".
func PolicyScope(s string) error {
	if err := store.ValidateScope(s); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

// SetPolicy stores a new version of a release policy after checking it
// compiles, and returns the version and, when OnPolicyChange logged it, the
// log entry's inclusion proof.
func (b *Broker) SetPolicy(ctx context.Context, scope, src, by string) (version int64, logProof []byte, err error) {
	if err := PolicyScope(scope); err != nil {
		return 0, nil, err
	}
	if _, err := b.policies.compile(ctx, src); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	now := b.now().UTC()
	v, err := b.store.PutPolicy(ctx, &store.Policy{Scope: scope, Rego: src, CreatedAt: now, CreatedBy: by})
	b.stored.forget(scope)
	if err != nil {
		return v, nil, err
	}
	b.log.InfoContext(ctx, "release policy stored", "scope", scope, "version", v, "by", by)
	if b.onPolicy != nil {
		sum := sha256.Sum256([]byte(src))
		if logProof, err = b.onPolicy(ctx, &PolicyChange{Scope: scope, Version: v, SHA256: hex.EncodeToString(sum[:]), By: by, Time: now}); err != nil {
			return v, nil, fmt.Errorf("release policy stored as %s version %d but not recorded: %w", scope, v, err)
		}
	}
	return v, logProof, nil
}

// PolicyChange is a stored release-policy version, as the transparency log
// records it: which scope, which version, the SHA-256 of its source, who
// wrote it.
type PolicyChange struct {
	Scope   string
	Version int64
	SHA256  string
	By      string
	Time    time.Time
}

// policyFor finds the release policy for a resource: its own, its
// repository's, the stored default, or DefaultReleasePolicy.
func (b *Broker) policyFor(ctx context.Context, req RequestView) (scope, src string, err error) {
	for _, s := range []string{"resource/" + req.Resource, "repo/" + req.Repository, "default"} {
		src, found, err := b.stored.get(ctx, s)
		if err != nil {
			return "", "", err
		}
		if found {
			return s, src, nil
		}
	}
	return "builtin", DefaultReleasePolicy, nil
}

// CacheTTL is how long a broker trusts its cached copy of a stored release
// policy or resource: a change made through another replica (or another
// process on the same database) reaches this one within this time, and one
// made through this broker at once.
const CacheTTL = time.Second

// storeCache caches what fetch reads from the store for CacheTTL, found or
// not. Cached values are shared: callers must not modify them.
type storeCache[V any] struct {
	fetch func(ctx context.Context, key string) (V, error) // store.ErrNotFound: none
	now   func() time.Time

	mu sync.Mutex
	m  map[string]cached[V]
}

type cached[V any] struct {
	v       V
	found   bool
	fetched time.Time
}

func newStoreCache[V any](now func() time.Time, fetch func(ctx context.Context, key string) (V, error)) *storeCache[V] {
	return &storeCache[V]{fetch: fetch, now: now, m: map[string]cached[V]{}}
}

func (c *storeCache[V]) get(ctx context.Context, key string) (V, bool, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < CacheTTL {
		return e.v, e.found, nil
	}
	v, err := c.fetch(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e = cached[V]{fetched: now}
	case err != nil:
		var none V
		return none, false, err
	default:
		e = cached[V]{v: v, found: true, fetched: now}
	}
	c.mu.Lock()
	if len(c.m) > 10000 {
		clear(c.m)
	}
	c.m[key] = e
	c.mu.Unlock()
	return e.v, e.found, nil
}

func (c *storeCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

// RotateKEK re-wraps every stored DEK under ring's current KEK; ring must
// also hold the KEKs the DEKs are wrapped under now. Sealed values are not
// touched. It returns how many versions were re-wrapped.
func RotateKEK(ctx context.Context, st store.Store, ring *kek.Keyring) (int, error) {
	return st.Rewrap(ctx, func(r *store.Resource) ([]byte, string, error) {
		return ring.Rewrap(ctx, r.KEKID, r.WrappedDEK, sealAAD(r.Path))
	})
}
