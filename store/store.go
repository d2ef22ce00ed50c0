// Package store defines the state of a kura server, one database shared by
// every role: the key broker's sealed resources addressed by KBS resource
// path, release policies, the audit trail of release decisions and the
// revocations of approvals it was given; the coordinator's collaboration
// files and run queue; and the short-lived
// records (nonces, sessions) that replicas must share. Store is the whole
// interface; each role declares the few methods it uses where it uses them
// (coordinator.Collaborations, coordinator.Runs, verifier.NonceStore).
// Backends live in subpackages: sqlite (embedded, the default) and postgres
// (shared by several replicas). The conformance suite in storetest runs
// against both.
//
// # Security model
//
// The store holds ciphertext only. The key broker seals each resource value
// with AES-256-GCM under a fresh data-encryption key (DEK), wraps the DEK with
// its current key-encryption key (package kek) and hands the store the sealed
// value, the wrapped DEK and the KEK's ID. The store never sees a plaintext
// value or an unwrapped key, so a stolen database (or a backup, or a replica)
// reveals nothing without the KEK, which never enters the database. What the
// store does reveal to whoever reads it: resource paths, sizes, versions,
// metadata, policies and the audit trail. Metadata is therefore for
// non-secret, owner-visible facts only.
//
// Every write appends a version; nothing is overwritten except by Rewrap,
// which replaces only the wrapped DEK and KEK ID of a version during KEK
// rotation. Deleting a resource appends a tombstone version: older versions
// (still sealed) remain readable through GetResourceVersion. A write is
// acknowledged only once it is durable (SQLite: WAL with synchronous=FULL;
// PostgreSQL: a committed transaction with synchronous_commit=on), except
// ephemeral records on PostgreSQL (see Ephemeral).
//
// The store does not authenticate or authorise anyone: CreatedBy and the
// audit fields record what the caller, the key broker, asserts.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrStore is the family of this package's sentinels: every one below wraps
// it and carries its kind of failure (internal/fault).
var ErrStore = errors.New("store failed")

// Sentinel errors returned by every Store. Backends wrap them with context;
// test with errors.Is.
var (
	// ErrNotFound means no such resource, version, policy or collaboration
	// exists, or the latest version of the resource is a tombstone.
	ErrNotFound = fault.New(ErrStore, fault.NotFound, "store: not found")
	// ErrInvalidPath means a resource path is not "repository/type/tag" with
	// each segment 1..128 characters of [A-Za-z0-9._-] (and not "." or "..").
	ErrInvalidPath = fault.New(ErrStore, fault.Invalid, "store: invalid resource path")
	// ErrInvalidScope means a policy scope is not "default",
	// "repo/<repository>" or "resource/<path>".
	ErrInvalidScope = fault.New(ErrStore, fault.Invalid, "store: invalid policy scope")
	// ErrInvalid means some other field of a write is unacceptable: empty
	// sealed value, oversized metadata, an unknown audit decision, text that
	// is not valid UTF-8 or holds a NUL byte, and so on.
	ErrInvalid = fault.New(ErrStore, fault.Invalid, "store: invalid argument")
	// ErrSchemaVersion means the database was created or migrated by a newer
	// kura whose schema this one does not know; it refuses to touch it.
	ErrSchemaVersion = fault.New(ErrStore, fault.Internal, "store: unsupported schema version")
	// ErrConflict means a conditional write lost a race: the version the
	// caller read is no longer the latest. Read again and retry.
	ErrConflict = fault.NewCode(ErrStore, fault.Conflict, "concurrent-update", "store: concurrent write")
	// ErrFull means the ephemeral table holds as many live records as it
	// may (a flood of sessions or nonces); retry once some have expired.
	ErrFull = fault.New(ErrStore, fault.Busy, "store: ephemeral table full")
)

// Audit decisions.
const (
	// DecisionReleased records that a resource was released.
	DecisionReleased = "released"
	// DecisionRefused records that a release was refused.
	DecisionRefused = "refused"
	// DecisionAdminRefused records that the owner API refused a key a
	// request about another tenant's repository (or the operator's): not
	// a release decision, and never logged as one (docs/spec/keybroker.md
	// §6).
	DecisionAdminRefused = "admin-refused"
)

// DefaultScope is the scope of the policy used when neither the resource nor
// its repository has one.
const DefaultScope = "default"

// Limits enforced on writes (ErrInvalid beyond them).
const (
	// MaxSealedSize bounds Resource.Sealed.
	MaxSealedSize = 8 << 20
	// MaxMetadataSize bounds the total size of Resource.Metadata keys and
	// values; each key is 1..128 bytes.
	MaxMetadataSize = 64 << 10
	// MaxRegoSize bounds Policy.Rego.
	MaxRegoSize = 1 << 20
	// MaxAuditFieldSize is the length each AuditRecord text field is
	// truncated to.
	MaxAuditFieldSize = 4096
	// MaxCollaborationIDSize bounds a collaboration id.
	MaxCollaborationIDSize = 256
	// MaxCollaborationSize bounds a stored collaboration file: the same
	// bound as collab.MaxCollaborationSize, which the coordinator enforces
	// on the request first (this package imports nothing of kura's).
	MaxCollaborationSize = 4 << 20
	// MaxEphemeralKeySize bounds an ephemeral record's key.
	MaxEphemeralKeySize = 256
	// MaxEphemeralValueSize bounds an ephemeral record's value.
	MaxEphemeralValueSize = 64 << 10
	// DefaultMaxEphemeral is the default bound on live ephemeral records.
	DefaultMaxEphemeral = 1_000_000
	// MaxAnalysisIDSize bounds Run.Analysis.
	MaxAnalysisIDSize = 128
	// MaxWorkerNameSize bounds a worker's name (Run.Worker).
	MaxWorkerNameSize = 256
	// DefaultMaxAttempts is how many claims ClaimRun allows a run when
	// its maxAttempts is zero or negative.
	DefaultMaxAttempts = 3
	// MaxRevocationSize bounds Revocation.Statement.
	MaxRevocationSize = 8 << 10
)

// Run states.
const (
	// RunQueued: submitted, waiting for a worker to claim it.
	RunQueued = "queued"
	// RunRunning: claimed by a worker whose lease may lapse.
	RunRunning = "running"
	// RunCompleted: finished by its worker with a result.
	RunCompleted = "completed"
	// RunFailed: finished by its worker with an error, or given up after
	// too many claims.
	RunFailed = "failed"
)

// Run is a clean-room run the coordinator schedules and a worker executes.
// Its text fields are validated on PutRun (ErrInvalid), except Error,
// which FinishRun stores with invalid UTF-8 and NUL bytes replaced by
// U+FFFD and truncated to MaxAuditFieldSize bytes, like audit text. Times
// are UTC with microsecond precision.
type Run struct {
	// ID is 32 lowercase hex characters: the run id bound into the run
	// context.
	ID string
	// Collaboration is the collaboration id (1..MaxCollaborationIDSize
	// bytes).
	Collaboration string
	// Analysis is the analysis id (1..MaxAnalysisIDSize bytes).
	Analysis string
	// SubmittedBy is the card fingerprint (64 lowercase hex) of the party
	// that submitted the run.
	SubmittedBy string
	// SubmittedAt is set by PutRun (now) when zero.
	SubmittedAt time.Time
	// State is one of the Run* states.
	State string
	// Worker names the worker holding the run, or that last held it (""
	// while queued).
	Worker string
	// LeaseUntil is, while running, when the worker's claim lapses (zero
	// otherwise).
	LeaseUntil time.Time
	// Attempts counts how many times a worker claimed the run.
	Attempts int
	// Result is, once completed, the hex SHA-256 of the result bundle's
	// signed payload.
	Result string
	// Receipt is, once completed or failed, the hex SHA-256 of the
	// receipt's signed payload ("" if none).
	Receipt string
	// Error says why the run failed.
	Error string
	// UpdatedAt is set by every write.
	UpdatedAt time.Time
}

// Revocation is a party's signed withdrawal of its approvals of a
// collaboration (docs/spec/manifest.md §5.4), as a key broker keeps it
// once it verified the signature. The store checks the fields' form, not
// the signature: a reader verifies Statement itself against the key it
// trusts. Times are UTC with microsecond precision.
type Revocation struct {
	// Collaboration is the collaboration id (1..MaxCollaborationIDSize
	// bytes).
	Collaboration string
	// Signer is the Ed25519 public key that signed Statement, 64
	// lowercase hex: what a key broker pins as a dataset's owner key.
	Signer string
	// Party is the card fingerprint the statement names (64 lowercase
	// hex).
	Party string
	// RevokedAt is the statement's revocation time: it revokes approvals
	// signed at or before it.
	RevokedAt time.Time
	// Statement is the signed revocation, as its signer's format encodes
	// it (1..MaxRevocationSize bytes).
	Statement []byte
	// Digest is the hex SHA-256 of Statement, set by the store: a
	// revocation is stored once.
	Digest string
	// StoredAt is when it was first stored (set by PutRevocation).
	StoredAt time.Time
}

// Resource is one version of a secret held by the key broker, sealed.
type Resource struct {
	// Path is the KBS resource path, "repository/type/tag".
	Path string
	// Version is 1, 2, 3... per path, assigned by the store.
	Version int64
	// Sealed is the AES-GCM ciphertext of the value, nonce prefixed. Nil in
	// tombstones, in listings and in Rewrap callbacks.
	Sealed []byte
	// WrappedDEK is the data-encryption key wrapped by the KEK KEKID. Nil in
	// tombstones and listings.
	WrappedDEK []byte
	// KEKID is the ID of the KEK that wrapped WrappedDEK ("" in tombstones).
	KEKID string
	// Deleted marks a tombstone version, written by DeleteResource.
	Deleted bool
	// CreatedAt is when the version was written, UTC with microsecond
	// precision. Zero on PutResource means now.
	CreatedAt time.Time
	// CreatedBy is the admin identity that wrote the version.
	CreatedBy string
	// PolicyID optionally names the release policy bound to this resource;
	// "" means the repository or default policy applies.
	PolicyID string
	// Metadata is owner-visible and not secret: content type, description,
	// not-before round... Nil when empty.
	Metadata map[string]string
}

// Policy is one version of a release policy.
type Policy struct {
	// Scope is "default", "repo/<repository>" or "resource/<path>".
	Scope string
	// Version is 1, 2, 3... per scope, assigned by the store.
	Version int64
	// Rego is the policy source; not empty.
	Rego string
	// CreatedAt is when the version was written (zero on PutPolicy: now).
	CreatedAt time.Time
	// CreatedBy is the admin identity that wrote the version.
	CreatedBy string
}

// AuditRecord is one release decision, or one owner-API refusal
// (DecisionAdminRefused). Text fields are stored with invalid
// UTF-8 and NUL bytes replaced by U+FFFD and truncated to MaxAuditFieldSize
// bytes: a decision is always recorded, whatever a client sent.
type AuditRecord struct {
	// Seq is assigned by the store: 1, 2, 3... in commit order, without gaps
	// unless a write fails.
	Seq int64
	// Time of the decision (zero on AppendAudit: now).
	Time time.Time
	// Decision is DecisionReleased, DecisionRefused or
	// DecisionAdminRefused.
	Decision string
	// Reason says why, in a few words.
	Reason string
	// Resource is the requested resource path, as requested.
	Resource string
	// TokenDigest is a digest of the attestation token presented, if any.
	TokenDigest string
	// PolicyID names the policy (and version) that decided.
	PolicyID string
	// Requester is the client address or workload identity.
	Requester string
	// TEE is the attested TEE type ("snp", "tdx", "sim"...).
	TEE string
	// Measurement is the attested launch measurement.
	Measurement string
	// Collaboration, ManifestHash (hex SHA-256), Analysis and RunID name
	// the clean-room run a dataset-key request came from, as its attested
	// run context says; empty for other requests.
	Collaboration string
	ManifestHash  string
	Analysis      string
	RunID         string
	// Epsilon is the differential-privacy ε the run's analysis spends
	// (an exact decimal, docs/spec/analysis.md §7), on a dataset-key
	// decision for an analysis under privacy; empty otherwise.
	Epsilon string
}

// RunSpend is one run's release of a resource, with the ε it spends.
type RunSpend struct {
	RunID   string
	Epsilon string
}

// Store is the state of a kura server. Implementations are safe for
// concurrent use, including by several processes sharing one database, and
// return only after a write is durable, except where Ephemeral says
// otherwise.
type Store interface {
	// PutResource appends a new version of r.Path and returns its number.
	// r.Version and r.Deleted must be zero; Sealed, WrappedDEK and KEKID
	// must be set.
	PutResource(ctx context.Context, r *Resource) (version int64, err error)
	// GetResource returns the latest version of path, or ErrNotFound if
	// there is none or it is a tombstone.
	GetResource(ctx context.Context, path string) (*Resource, error)
	// GetResourceVersion returns one version of path, tombstones included
	// (Deleted set), or ErrNotFound.
	GetResourceVersion(ctx context.Context, path string, version int64) (*Resource, error)
	// ListResources returns the latest version of each path starting with
	// prefix (a plain string prefix, "" for all) whose latest version is not
	// a tombstone, sorted by path, with Sealed and WrappedDEK nil.
	ListResources(ctx context.Context, prefix string) ([]Resource, error)
	// DeleteResource appends a tombstone version written by by and returns
	// its number, or ErrNotFound if path has no live version.
	DeleteResource(ctx context.Context, path, by string) (version int64, err error)
	// Rewrap re-wraps DEKs for KEK rotation. It calls fn for every
	// non-tombstone version of every resource (Sealed nil) in path, version
	// order; when fn returns a KEK ID different from r.KEKID, the version's
	// WrappedDEK and KEKID are replaced in place, in transactions of a few
	// hundred versions. Returning r.WrappedDEK, r.KEKID (the version is
	// already under the target KEK) leaves it untouched. Rewrap returns the
	// number of versions replaced; on error, batches already committed stay
	// committed, each version consistently under its old or its new KEK.
	Rewrap(ctx context.Context, fn func(r *Resource) (newWrapped []byte, newKEKID string, err error)) (n int, err error)
	// PutPolicy appends a new version of p.Scope and returns its number.
	PutPolicy(ctx context.Context, p *Policy) (version int64, err error)
	// GetPolicy returns the latest version of the policy for scope, or
	// ErrNotFound.
	GetPolicy(ctx context.Context, scope string) (*Policy, error)
	// AppendAudit durably records rec and returns its sequence number.
	AppendAudit(ctx context.Context, rec *AuditRecord) (seq int64, err error)
	// ListAudit returns up to limit records with Seq > after, in Seq order.
	// limit <= 0 means 100; at most 10000 records are returned.
	ListAudit(ctx context.Context, after int64, limit int) ([]AuditRecord, error)
	// CountRuns returns how many distinct runs of analysis in
	// collaboration got a key released (decision "released"), not counting
	// the run except.
	CountRuns(ctx context.Context, collaboration, analysis, except string) (int, error)
	// RunSpends returns the distinct (run, ε) pairs of the records of
	// collaboration that released resource with a non-empty Epsilon, by
	// run id.
	RunSpends(ctx context.Context, collaboration, resource string) ([]RunSpend, error)
	// GetCollaboration returns the latest stored file of collaboration id
	// and its version (1 for the first one stored), or ErrNotFound.
	GetCollaboration(ctx context.Context, id string) (file []byte, version int64, err error)
	// PutCollaboration stores file as version of collaboration id if the
	// latest stored version is version-1 (nothing stored, for version 1),
	// and fails with ErrConflict otherwise. Every version is kept.
	// CheckCollaboration says what is valid (ErrInvalid otherwise; version
	// starts at 1).
	PutCollaboration(ctx context.Context, id string, file []byte, version int64) error
	// PutRun inserts r as queued: its State, Worker, LeaseUntil,
	// Attempts, Result, Receipt and Error are ignored and reset. It fails
	// with ErrConflict if a run with r.ID exists, ErrInvalid for a bad
	// field.
	PutRun(ctx context.Context, r *Run) error
	// GetRun returns the run id, or ErrNotFound.
	GetRun(ctx context.Context, id string) (*Run, error)
	// ListRuns returns up to limit runs of collaboration ("" for all),
	// newest SubmittedAt first, then by id, descending. limit <= 0 means
	// 100; at most 10000 runs are returned.
	ListRuns(ctx context.Context, collaboration string, limit int) ([]Run, error)
	// ClaimRun atomically, even against other processes on the same
	// database, takes the oldest run (by SubmittedAt, then id) that is
	// queued, or running with a LeaseUntil before now. A candidate
	// already claimed maxAttempts times (<= 0: DefaultMaxAttempts) is
	// marked failed with Error "gave up after N attempts" and the next
	// one considered. The run taken becomes running, held by worker until
	// now+lease, its Attempts incremented and UpdatedAt now, and is
	// returned. ErrNotFound means there was none to take.
	ClaimRun(ctx context.Context, worker string, now time.Time, lease time.Duration, maxAttempts int) (*Run, error)
	// RenewRun sets the lease of run id to until. It fails with
	// ErrNotFound if there is no such run and ErrConflict unless the run
	// is running and held by worker.
	RenewRun(ctx context.Context, id, worker string, until time.Time) error
	// FinishRun ends run id in state RunCompleted, with result (64 hex
	// characters) and receipt (64 hex characters or ""), or RunFailed,
	// with receipt and errText; the lease is cleared. It fails with
	// ErrInvalid for a bad argument, ErrNotFound if there is no such run
	// and ErrConflict unless the run is running and held by worker (a
	// worker whose lapsed lease another took cannot finish it).
	FinishRun(ctx context.Context, id, worker, state, result, receipt, errText string) error
	// PutRevocation stores r unless a revocation with the same Statement
	// is stored, and reports whether it was new. Its Digest and StoredAt
	// are set by the store; a field of the wrong form is ErrInvalid.
	PutRevocation(ctx context.Context, r *Revocation) (created bool, err error)
	// ListRevocations returns up to limit revocations of collaboration
	// signed by signer (64 lowercase hex), latest RevokedAt first, then by
	// digest. limit <= 0 means 100; at most 10000 are returned.
	ListRevocations(ctx context.Context, collaboration, signer string, limit int) ([]Revocation, error)
	// Ephemeral returns the store's table of short-lived records.
	Ephemeral() Ephemeral
	// Close releases the store's connections. Calling it twice is harmless.
	Close() error
}

// Ephemeral holds short-lived records that every process sharing the
// database sees: the verifier's issued nonces, KBS sessions and the owner
// API's replay cache. A record lives until its expiry; an expired record is
// never returned, and backends purge expired records in the background.
// Unlike every other write, an ephemeral write may be acknowledged before
// it is durable (PostgreSQL commits it asynchronously): a crash can lose the
// last moments' records, which only makes their clients start again.
//
// Add takes keys of 1..MaxEphemeralKeySize bytes of UTF-8 without NUL,
// values of at most MaxEphemeralValueSize bytes and an expiry after now
// (CheckEphemeral; ErrInvalid otherwise); Get and Take of a key Add would
// refuse find nothing. Callers put a namespace before each key ("nonce/",
// "kbs-session/"...) and never a secret in it.
type Ephemeral interface {
	// Add stores value under key until expires and reports true, or
	// reports false and stores nothing when a live record holds key. It
	// may fail with ErrFull instead when the table holds about its maximum
	// of live records (each process counts its own writes between purges).
	Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error)
	// Get returns the live record under key; ok is false when there is none.
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	// Take removes the live record under key and returns it. Of concurrent
	// Takes of one key, from any process, at most one gets ok.
	Take(ctx context.Context, key string) (value []byte, ok bool, err error)
}
