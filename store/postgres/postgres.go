// Package postgres is the key broker store for deployments with several
// broker replicas: a PostgreSQL database (github.com/jackc/pgx/v5) that every
// replica opens. Versions and audit sequence numbers are assigned under row
// locks (an upsert on a per-path head row; one audit head row), so concurrent
// writers on any number of replicas never collide and a reader following the
// audit log with ListAudit sees sequence numbers in commit order, without
// gaps. A write returns after its transaction commits with
// synchronous_commit on (a server or role setting of "off" is overridden per
// session). Audit records are group committed per replica.
//
// Collaboration files are kept, every version, in the collaborations table;
// the primary key (id, version) lets exactly one of several replicas racing
// to store a version win. Runs wait in the runs table; replicas claim them
// with SELECT ... FOR UPDATE SKIP LOCKED, so each claim takes a run no
// other claim holds. The revocations a key broker was given are kept in
// the revocations table, once each (keyed by the statement's digest).
// Ephemeral records (store.Ephemeral) live in the ephemeral table and,
// unlike everything else, are written through a second small pool whose
// sessions set synchronous_commit=off: their commits do not wait for the
// WAL to reach disk, so a server crash may lose the last moments' records.
// A background loop in each replica purges expired ones.
//
// The schema is created or migrated on open under an advisory lock, so
// replicas may start together. Tables are created in the connection's
// search_path, which the URL may set (?search_path=kbs).
//
// See package store for the security model: the database holds only sealed
// values and wrapped keys.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/internal/groupcommit"
	"github.com/kura-cc/kura/store/internal/record"
)

// Config configures a PostgreSQL store.
type Config struct {
	// URL is a PostgreSQL connection URL or keyword/value string, as
	// accepted by pgx: postgres://user:password@host:5432/db?sslmode=verify-full.
	// It holds a password: read it from a file or the environment.
	URL string
	// Logger receives open, migration and rotation events. Nil discards.
	Logger *slog.Logger
	// MaxConns bounds the connection pool. Zero means pgx's default
	// (the larger of 4 and the number of CPUs). Ephemeral records use a
	// second pool of up to 4 connections.
	MaxConns int32
	// MaxEphemeral bounds the live ephemeral records (approximately; see
	// Ephemeral). Zero means store.DefaultMaxEphemeral.
	MaxEphemeral int
}

// Store is a store.Store in a PostgreSQL database.
type Store struct {
	pool   *pgxpool.Pool
	eph    *pgxpool.Pool // ephemeral records: synchronous_commit=off
	log    *slog.Logger
	now    func() time.Time
	audit  *groupcommit.Committer[store.AuditRecord, int64]
	maxEph int64
	live   atomic.Int64 // approximate count of live ephemeral records
	// stopPurge cancels the purge loop, which closes purgeDone on the way
	// out.
	stopPurge context.CancelFunc
	purgeDone chan struct{}
	closer    sync.Once
}

var _ store.Store = (*Store)(nil)

// migrationLock is the pg_advisory_xact_lock key held while migrating
// ("kurakbs" in ASCII).
const migrationLock = 0x6b7572616b6273

// New connects to cfg.URL and creates or migrates the schema.
func New(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("%w: cannot parse PostgreSQL URL", store.ErrInvalid)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	ec := pc.Copy()
	ec.MaxConns = ephemeralConns
	ec.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		// Acknowledged writes must be durable: refuse to run with
		// synchronous_commit=off, whatever the server or role says.
		var sc string
		if err := c.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sc); err != nil {
			return err
		}
		if sc == "off" {
			_, err := c.Exec(ctx, `SET synchronous_commit = on`)
			return err
		}
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: connect: %w", err)
	}
	s := &Store{pool: pool, log: log, now: time.Now, maxEph: int64(cfg.MaxEphemeral)}
	if s.maxEph <= 0 {
		s.maxEph = store.DefaultMaxEphemeral
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if s.eph, err = pgxpool.NewWithConfig(ctx, ec); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store/postgres: connect: %w", err)
	}
	if err := s.countEphemeral(ctx); err != nil {
		s.eph.Close()
		pool.Close()
		return nil, err
	}
	s.audit = groupcommit.New(256, s.flushAudit)
	var pctx context.Context
	pctx, s.stopPurge = context.WithCancel(context.WithoutCancel(ctx))
	s.purgeDone = make(chan struct{})
	go s.purgeLoop(pctx, purgeEvery)
	log.InfoContext(ctx, "key broker store opened", "backend", "postgres",
		"host", pc.ConnConfig.Host, "database", pc.ConnConfig.Database, "schema", len(migrations))
	return s, nil
}

// migrations[i] brings the schema from version i to i+1.
var migrations = []string{
	`
CREATE TABLE resources (
	path        TEXT COLLATE "C" NOT NULL,
	version     BIGINT      NOT NULL,
	sealed      BYTEA,
	wrapped_dek BYTEA,
	kek_id      TEXT        NOT NULL DEFAULT '',
	deleted     BOOLEAN     NOT NULL DEFAULT false,
	created_at  TIMESTAMPTZ NOT NULL,
	created_by  TEXT        NOT NULL DEFAULT '',
	policy_id   TEXT        NOT NULL DEFAULT '',
	metadata    TEXT        NOT NULL DEFAULT '{}',
	PRIMARY KEY (path, version)
);
CREATE TABLE resource_heads (
	path    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	version BIGINT  NOT NULL,
	deleted BOOLEAN NOT NULL
);
CREATE TABLE policies (
	scope      TEXT COLLATE "C" NOT NULL,
	version    BIGINT      NOT NULL,
	rego       TEXT        NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	created_by TEXT        NOT NULL DEFAULT '',
	PRIMARY KEY (scope, version)
);
CREATE TABLE policy_heads (
	scope   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	version BIGINT NOT NULL
);
CREATE TABLE audit (
	seq          BIGINT      NOT NULL PRIMARY KEY,
	time         TIMESTAMPTZ NOT NULL,
	decision     TEXT        NOT NULL,
	reason       TEXT        NOT NULL,
	resource     TEXT        NOT NULL,
	token_digest TEXT        NOT NULL,
	policy_id    TEXT        NOT NULL,
	requester    TEXT        NOT NULL,
	tee          TEXT        NOT NULL,
	measurement  TEXT        NOT NULL
);
-- One row whose lock orders audit appends: the next seq is taken and the
-- records inserted in one transaction, so seqs commit in order.
CREATE TABLE audit_head (
	id  INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	seq BIGINT  NOT NULL
);
INSERT INTO audit_head (id, seq) VALUES (1, 0);
`,
	`
CREATE TABLE collaborations (
	id         TEXT COLLATE "C" NOT NULL,
	version    BIGINT      NOT NULL,
	file       BYTEA       NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (id, version)
);
CREATE TABLE ephemeral (
	key     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	value   BYTEA       NOT NULL,
	expires TIMESTAMPTZ NOT NULL
);
CREATE INDEX ephemeral_expires ON ephemeral (expires);
`,
	`
ALTER TABLE audit
	ADD COLUMN collaboration TEXT NOT NULL DEFAULT '',
	ADD COLUMN manifest_hash TEXT NOT NULL DEFAULT '',
	ADD COLUMN analysis      TEXT NOT NULL DEFAULT '',
	ADD COLUMN run_id        TEXT NOT NULL DEFAULT '';
`,
	`
CREATE TABLE runs (
	id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	collaboration TEXT COLLATE "C" NOT NULL,
	analysis      TEXT        NOT NULL,
	submitted_by  TEXT        NOT NULL,
	submitted_at  TIMESTAMPTZ NOT NULL,
	state         TEXT        NOT NULL,
	worker        TEXT        NOT NULL DEFAULT '',
	lease_until   TIMESTAMPTZ, -- while running, else NULL
	attempts      INTEGER     NOT NULL DEFAULT 0,
	result        TEXT        NOT NULL DEFAULT '',
	receipt       TEXT        NOT NULL DEFAULT '',
	error         TEXT        NOT NULL DEFAULT '',
	updated_at    TIMESTAMPTZ NOT NULL
);
-- ClaimRun scans the unfinished runs, oldest first.
CREATE INDEX runs_claim ON runs (submitted_at, id) WHERE state IN ('queued', 'running');
-- ListRuns, newest first: all runs, or one collaboration's.
CREATE INDEX runs_submitted ON runs (submitted_at, id);
CREATE INDEX runs_collaboration ON runs (collaboration, submitted_at, id);
`,
	`
CREATE TABLE revocations (
	digest        TEXT COLLATE "C" NOT NULL PRIMARY KEY, -- hex SHA-256 of the statement
	collaboration TEXT COLLATE "C" NOT NULL,
	signer        TEXT COLLATE "C" NOT NULL,
	party         TEXT        NOT NULL,
	revoked_at    TIMESTAMPTZ NOT NULL,
	statement     BYTEA       NOT NULL,
	stored_at     TIMESTAMPTZ NOT NULL
);
-- ListRevocations: one signer's revocations of a collaboration, latest first.
CREATE INDEX revocations_signer ON revocations (collaboration, signer, revoked_at);
`,
	`
ALTER TABLE audit ADD COLUMN epsilon TEXT NOT NULL DEFAULT '';
-- RunSpends: a collaboration's releases of one resource.
CREATE INDEX audit_spends ON audit (collaboration, resource) WHERE epsilon <> '';
`,
}

func (s *Store) migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		switch err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		if v > len(migrations) {
			return fmt.Errorf("%w: database schema %d, this build knows up to %d", store.ErrSchemaVersion, v, len(migrations))
		}
		for ; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("to schema %d: %w", v+1, err)
			}
			s.log.InfoContext(ctx, "key broker store migrated", "backend", "postgres", "schema", v+1)
		}
		_, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v)
		return err
	})
	if errors.Is(err, store.ErrSchemaVersion) {
		return err
	}
	if err != nil {
		return fmt.Errorf("store/postgres: migrate: %w", err)
	}
	return nil
}

// Close stops the purge loop and closes the connection pools. Calling it
// twice is harmless.
func (s *Store) Close() error {
	s.closer.Do(func() {
		s.stopPurge()
		<-s.purgeDone
		s.eph.Close()
		s.pool.Close()
	})
	return nil
}

// PutResource appends a new version of r.Path.
func (s *Store) PutResource(ctx context.Context, r *store.Resource) (int64, error) {
	rec, meta, err := record.Resource(r, s.now)
	if err != nil {
		return 0, err
	}
	var version int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		version, err = appendResource(ctx, tx, &rec, meta)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store/postgres: put %s: %w", rec.Path, err)
	}
	return version, nil
}

// appendResource assigns the next version of rec.Path under the head row's
// lock and inserts it.
func appendResource(ctx context.Context, tx pgx.Tx, rec *store.Resource, meta string) (int64, error) {
	var version int64
	err := tx.QueryRow(ctx, `
INSERT INTO resource_heads (path, version, deleted) VALUES ($1, 1, $2)
ON CONFLICT (path) DO UPDATE SET version = resource_heads.version + 1, deleted = EXCLUDED.deleted
RETURNING version`, rec.Path, rec.Deleted).Scan(&version)
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `
INSERT INTO resources (path, version, sealed, wrapped_dek, kek_id, deleted, created_at, created_by, policy_id, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		rec.Path, version, rec.Sealed, rec.WrappedDEK, rec.KEKID, rec.Deleted, rec.CreatedAt, rec.CreatedBy, rec.PolicyID, meta)
	if err != nil {
		return 0, err
	}
	return version, nil
}

const resourceColumns = `r.path, r.version, r.sealed, r.wrapped_dek, r.kek_id, r.deleted, r.created_at, r.created_by, r.policy_id, r.metadata`

func scanResource(row pgx.Row) (*store.Resource, error) {
	var (
		r    store.Resource
		meta string
	)
	if err := row.Scan(&r.Path, &r.Version, &r.Sealed, &r.WrappedDEK, &r.KEKID, &r.Deleted, &r.CreatedAt, &r.CreatedBy, &r.PolicyID, &meta); err != nil {
		return nil, err
	}
	r.CreatedAt = r.CreatedAt.UTC()
	m, err := record.DecodeMetadata(meta)
	if err != nil {
		return nil, err
	}
	r.Metadata = m
	return &r, nil
}

// GetResource returns the latest version of path unless it is a tombstone.
func (s *Store) GetResource(ctx context.Context, path string) (*store.Resource, error) {
	if err := store.ValidatePath(path); err != nil {
		return nil, err
	}
	r, err := scanResource(s.pool.QueryRow(ctx, `
SELECT `+resourceColumns+` FROM resource_heads h JOIN resources r ON r.path = h.path AND r.version = h.version
WHERE h.path = $1 AND NOT h.deleted`, path))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: resource %s", store.ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store/postgres: get %s: %w", path, err)
	}
	return r, nil
}

// GetResourceVersion returns one version of path, tombstones included.
func (s *Store) GetResourceVersion(ctx context.Context, path string, version int64) (*store.Resource, error) {
	if err := store.ValidatePath(path); err != nil {
		return nil, err
	}
	r, err := scanResource(s.pool.QueryRow(ctx, `
SELECT `+resourceColumns+` FROM resources r WHERE r.path = $1 AND r.version = $2`, path, version))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: resource %s version %d", store.ErrNotFound, path, version)
	}
	if err != nil {
		return nil, fmt.Errorf("store/postgres: get %s version %d: %w", path, version, err)
	}
	return r, nil
}

func collectResources(rows pgx.Rows) ([]store.Resource, error) {
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

// ListResources returns the latest live version of each path under prefix.
func (s *Store) ListResources(ctx context.Context, prefix string) ([]store.Resource, error) {
	if err := record.Prefix(prefix); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `
SELECT r.path, r.version, NULL::bytea, NULL::bytea, r.kek_id, r.deleted, r.created_at, r.created_by, r.policy_id, r.metadata
FROM resource_heads h JOIN resources r ON r.path = h.path AND r.version = h.version
WHERE NOT h.deleted AND starts_with(h.path, $1)
ORDER BY h.path`, prefix)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: list: %w", err)
	}
	out, err := collectResources(rows)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: list: %w", err)
	}
	return out, nil
}

// DeleteResource appends a tombstone to path.
func (s *Store) DeleteResource(ctx context.Context, path, by string) (int64, error) {
	rec, err := record.Tombstone(path, by, s.now)
	if err != nil {
		return 0, err
	}
	var version int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var deleted bool
		err := tx.QueryRow(ctx, `SELECT deleted FROM resource_heads WHERE path = $1 FOR UPDATE`, path).Scan(&deleted)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && deleted) {
			return fmt.Errorf("%w: resource %s", store.ErrNotFound, path)
		}
		if err != nil {
			return err
		}
		version, err = appendResource(ctx, tx, &rec, "{}")
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("store/postgres: delete %s: %w", path, err)
	}
	return version, nil
}

// Rewrap replaces wrapped DEKs for KEK rotation; see store.Store.
func (s *Store) Rewrap(ctx context.Context, fn func(r *store.Resource) ([]byte, string, error)) (int, error) {
	var (
		n         int
		afterPath string
		afterVer  int64
	)
	for {
		rows, err := s.pool.Query(ctx, `
SELECT r.path, r.version, NULL::bytea, r.wrapped_dek, r.kek_id, r.deleted, r.created_at, r.created_by, r.policy_id, r.metadata
FROM resources r WHERE NOT r.deleted AND (r.path, r.version) > ($1, $2)
ORDER BY r.path, r.version LIMIT $3`, afterPath, afterVer, record.RewrapBatch)
		if err != nil {
			return n, fmt.Errorf("store/postgres: rewrap: %w", err)
		}
		batch, err := collectResources(rows)
		if err != nil {
			return n, fmt.Errorf("store/postgres: rewrap: %w", err)
		}
		if len(batch) == 0 {
			return n, nil
		}
		afterPath, afterVer = batch[len(batch)-1].Path, batch[len(batch)-1].Version
		b := &pgx.Batch{}
		for i := range batch {
			r := &batch[i]
			path, version, oldID := r.Path, r.Version, r.KEKID
			wrapped, id, err := fn(r)
			if err != nil {
				return n, fmt.Errorf("store/postgres: rewrap %s version %d: %w", path, version, err)
			}
			if id == oldID {
				continue
			}
			if err := record.Rewrapped(wrapped, id); err != nil {
				return n, err
			}
			b.Queue(`UPDATE resources SET wrapped_dek = $1, kek_id = $2 WHERE path = $3 AND version = $4 AND kek_id = $5`,
				wrapped, id, path, version, oldID)
		}
		if b.Len() == 0 {
			continue
		}
		done := 0
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			res := tx.SendBatch(ctx, b)
			for range b.Len() {
				tag, err := res.Exec()
				if err != nil {
					res.Close()
					return err
				}
				done += int(tag.RowsAffected())
			}
			return res.Close()
		})
		if err != nil {
			return n, fmt.Errorf("store/postgres: rewrap: %w", err)
		}
		n += done
		s.log.InfoContext(ctx, "key broker store rewrapped batch", "backend", "postgres", "versions", done, "total", n)
	}
}

// PutPolicy appends a new version of p.Scope.
func (s *Store) PutPolicy(ctx context.Context, p *store.Policy) (int64, error) {
	rec, err := record.Policy(p, s.now)
	if err != nil {
		return 0, err
	}
	var version int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
INSERT INTO policy_heads (scope, version) VALUES ($1, 1)
ON CONFLICT (scope) DO UPDATE SET version = policy_heads.version + 1
RETURNING version`, rec.Scope).Scan(&version)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO policies (scope, version, rego, created_at, created_by) VALUES ($1, $2, $3, $4, $5)`,
			rec.Scope, version, rec.Rego, rec.CreatedAt, rec.CreatedBy)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store/postgres: put policy %s: %w", rec.Scope, err)
	}
	return version, nil
}

// GetPolicy returns the latest version of the policy for scope.
func (s *Store) GetPolicy(ctx context.Context, scope string) (*store.Policy, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	var p store.Policy
	err := s.pool.QueryRow(ctx, `
SELECT p.scope, p.version, p.rego, p.created_at, p.created_by
FROM policy_heads h JOIN policies p ON p.scope = h.scope AND p.version = h.version WHERE h.scope = $1`, scope).
		Scan(&p.Scope, &p.Version, &p.Rego, &p.CreatedAt, &p.CreatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: policy %s", store.ErrNotFound, scope)
	}
	if err != nil {
		return nil, fmt.Errorf("store/postgres: get policy %s: %w", scope, err)
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return &p, nil
}

// AppendAudit durably records rec, group committed with concurrent calls.
func (s *Store) AppendAudit(ctx context.Context, rec *store.AuditRecord) (int64, error) {
	a, err := record.Audit(rec, s.now)
	if err != nil {
		return 0, err
	}
	return s.audit.Do(ctx, a)
}

func (s *Store) flushAudit(ctx context.Context, recs []store.AuditRecord) ([]int64, error) {
	seqs := make([]int64, len(recs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var last int64
		if err := tx.QueryRow(ctx, `UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq`, len(recs)).Scan(&last); err != nil {
			return err
		}
		rows := make([][]any, len(recs))
		for i, a := range recs {
			seqs[i] = last - int64(len(recs)) + 1 + int64(i)
			rows[i] = []any{seqs[i], a.Time, a.Decision, a.Reason, a.Resource, a.TokenDigest, a.PolicyID, a.Requester, a.TEE, a.Measurement,
				a.Collaboration, a.ManifestHash, a.Analysis, a.RunID, a.Epsilon}
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit"},
			[]string{"seq", "time", "decision", "reason", "resource", "token_digest", "policy_id", "requester", "tee", "measurement",
				"collaboration", "manifest_hash", "analysis", "run_id", "epsilon"},
			pgx.CopyFromRows(rows))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store/postgres: audit: %w", err)
	}
	return seqs, nil
}

// CountRuns implements store.Store.
func (s *Store) CountRuns(ctx context.Context, collaboration, analysis, except string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
SELECT COUNT(DISTINCT run_id) FROM audit
WHERE decision = 'released' AND collaboration = $1 AND analysis = $2 AND run_id <> '' AND run_id <> $3`,
		collaboration, analysis, except).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count runs: %w", err)
	}
	return n, nil
}

// RunSpends implements store.Store.
func (s *Store) RunSpends(ctx context.Context, collaboration, resource string) ([]store.RunSpend, error) {
	rows, err := s.pool.Query(ctx, `
SELECT DISTINCT run_id, epsilon FROM audit
WHERE decision = 'released' AND collaboration = $1 AND resource = $2 AND epsilon <> '' AND run_id <> ''
ORDER BY run_id, epsilon`, collaboration, resource)
	if err != nil {
		return nil, fmt.Errorf("store: run spends: %w", err)
	}
	defer rows.Close()
	var out []store.RunSpend
	for rows.Next() {
		var r store.RunSpend
		if err := rows.Scan(&r.RunID, &r.Epsilon); err != nil {
			return nil, fmt.Errorf("store: run spends: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: run spends: %w", err)
	}
	return out, nil
}

// ListAudit returns up to limit records after seq after.
func (s *Store) ListAudit(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	rows, err := s.pool.Query(ctx, `
SELECT seq, time, decision, reason, resource, token_digest, policy_id, requester, tee, measurement,
	collaboration, manifest_hash, analysis, run_id, epsilon
FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`, after, record.ListLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store/postgres: list audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var a store.AuditRecord
		if err := rows.Scan(&a.Seq, &a.Time, &a.Decision, &a.Reason, &a.Resource, &a.TokenDigest, &a.PolicyID, &a.Requester, &a.TEE, &a.Measurement,
			&a.Collaboration, &a.ManifestHash, &a.Analysis, &a.RunID, &a.Epsilon); err != nil {
			return nil, fmt.Errorf("store/postgres: list audit: %w", err)
		}
		a.Time = a.Time.UTC()
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/postgres: list audit: %w", err)
	}
	return out, nil
}

// PutCollaboration stores file as version of collaboration id if the latest
// stored version is version-1, and fails with store.ErrConflict otherwise:
// of replicas racing to store one version, the primary key lets one win. A
// version below 1 can never be stored: it is store.ErrInvalid, not a
// conflict to retry.
func (s *Store) PutCollaboration(ctx context.Context, id string, file []byte, version int64) error {
	if err := store.CheckCollaboration(id, file, version); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO collaborations (id, version, file, created_at)
SELECT $1, $2, $3, $4 WHERE (SELECT coalesce(max(version), 0) FROM collaborations WHERE id = $1) = $2::bigint - 1`,
		id, version, file, s.now())
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == uniqueViolation, err == nil && tag.RowsAffected() == 0:
		return fmt.Errorf("%w: collaboration %s version %d is not the next", store.ErrConflict, id, version)
	case err != nil:
		return fmt.Errorf("store/postgres: put collaboration %s: %w", id, err)
	}
	return nil
}

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// GetCollaboration returns the latest stored file of collaboration id.
func (s *Store) GetCollaboration(ctx context.Context, id string) ([]byte, int64, error) {
	if err := store.CheckCollaborationID(id); err != nil {
		return nil, 0, err
	}
	var (
		file    []byte
		version int64
	)
	err := s.pool.QueryRow(ctx, `SELECT file, version FROM collaborations WHERE id = $1 ORDER BY version DESC LIMIT 1`, id).Scan(&file, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, fmt.Errorf("%w: collaboration %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store/postgres: get collaboration %s: %w", id, err)
	}
	return file, version, nil
}
