// Package sqlite is the embedded key broker store: one SQLite database file
// (modernc.org/sqlite, pure Go) in WAL mode with synchronous=FULL, so an
// acknowledged write survives a process kill or a power loss. Writes go
// through a single connection in BEGIN IMMEDIATE transactions, which also
// serialises them against other processes opening the same file; reads use a
// separate pool and run concurrently with writes. Audit records are group
// committed: concurrent AppendAudit calls share one transaction and one
// fsync, and the batch is written with a few multi-row inserts, numbered
// under the write lock.
//
// Collaboration files are kept, every version, in the collaborations table;
// the run queue in the runs table, claimed under the single writer; the
// revocations a key broker was given in the revocations table.
// Ephemeral records (store.Ephemeral) live in the ephemeral table; their
// writes are group committed too and, like every write here, durable once
// acknowledged. A background loop purges expired ones.
//
// See package store for the security model: the database holds only sealed
// values and wrapped keys.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/internal/groupcommit"
	"github.com/kura-cc/kura/store/internal/record"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Config configures a SQLite store.
type Config struct {
	// Path is the database file, created with mode 0600 if missing. SQLite
	// keeps "-wal" and "-shm" files next to it. Required; ":memory:" and
	// names holding '?' are not accepted.
	Path string
	// Logger receives open, migration and rotation events. Nil discards.
	Logger *slog.Logger
	// BusyTimeout is how long a write waits for another process holding the
	// database. Zero means 10 seconds.
	BusyTimeout time.Duration
	// MaxEphemeral bounds the live ephemeral records (approximately; see
	// Ephemeral). Zero means store.DefaultMaxEphemeral.
	MaxEphemeral int
}

// Store is a store.Store in a SQLite database.
type Store struct {
	w, r *sql.DB // w: one connection, all writes; r: concurrent reads
	// Hot-path statements (releases, audit, ephemeral writes), prepared once.
	getResource, lastAuditSeq, addEphemeral, takeEphemeral *sql.Stmt
	// insertAudit[i] inserts auditChunk(i) audit records.
	insertAudit [auditChunks]*sql.Stmt
	// ckpt checkpoints the WAL in the background, so that no commit waits
	// for the database file's own fsync (wal_autocheckpoint is off on w).
	ckpt *sql.DB
	// stop ends the checkpoint and purge loops, which close their done
	// channels on the way out.
	stop                chan struct{}
	ckptDone, purgeDone chan struct{}
	log                 *slog.Logger
	now                 func() time.Time
	audit               *groupcommit.Committer[store.AuditRecord, int64]
	eph                 *groupcommit.Committer[ephemeralOp, ephemeralResult]
	maxEph              int64
	live                atomic.Int64 // approximate count of live ephemeral records
	closer              sync.Once
	cerr                error
}

var _ store.Store = (*Store)(nil)

// New opens (creating and migrating if needed) the database at cfg.Path.
func New(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Path == "" || cfg.Path == ":memory:" || strings.ContainsRune(cfg.Path, '?') || strings.HasPrefix(cfg.Path, "file:") {
		return nil, fmt.Errorf("%w: sqlite path %q: want a file name without '?'", store.ErrInvalid, cfg.Path)
	}
	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = 10 * time.Second
	}
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.WarnContext(ctx, "key broker database readable by group or others", "path", cfg.Path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}

	common := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busy.Milliseconds())
	w, err := sql.Open("sqlite", cfg.Path+"?"+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(0)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	s := &Store{w: w, log: log, now: time.Now, maxEph: int64(cfg.MaxEphemeral)}
	if s.maxEph <= 0 {
		s.maxEph = store.DefaultMaxEphemeral
	}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", cfg.Path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	s.r = r
	if s.getResource, err = r.PrepareContext(ctx, getResourceSQL); err == nil {
		s.lastAuditSeq, err = w.PrepareContext(ctx, lastAuditSeqSQL)
	}
	for i := range auditChunks {
		if err == nil {
			s.insertAudit[i], err = w.PrepareContext(ctx, insertAuditSQL(auditChunk(i)))
		}
	}
	if err == nil {
		s.addEphemeral, err = w.PrepareContext(ctx, addEphemeralSQL)
	}
	if err == nil {
		s.takeEphemeral, err = w.PrepareContext(ctx, takeEphemeralSQL)
	}
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("store/sqlite: prepare: %w", err)
	}
	if s.ckpt, err = sql.Open("sqlite", cfg.Path+"?"+common); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("store/sqlite: %w", err)
	}
	s.ckpt.SetMaxOpenConns(1)
	if err := s.countEphemeral(ctx); err != nil {
		w.Close()
		r.Close()
		s.ckpt.Close()
		return nil, err
	}
	s.stop, s.ckptDone, s.purgeDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
	go s.every(checkpointEvery, s.ckptDone, s.checkpoint)
	go s.every(purgeEvery, s.purgeDone, s.purge)
	s.audit = groupcommit.New(256, s.flushAudit)
	s.eph = groupcommit.New(256, s.flushEphemeral)
	log.InfoContext(ctx, "key broker store opened", "backend", "sqlite", "path", cfg.Path, "schema", len(migrations))
	return s, nil
}

// migrations[i] brings the schema from version i to i+1.
var migrations = []string{
	`
CREATE TABLE resources (
	path        TEXT    NOT NULL,
	version     INTEGER NOT NULL,
	sealed      BLOB,
	wrapped_dek BLOB,
	kek_id      TEXT    NOT NULL DEFAULT '',
	deleted     INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL, -- Unix microseconds, UTC
	created_by  TEXT    NOT NULL DEFAULT '',
	policy_id   TEXT    NOT NULL DEFAULT '',
	metadata    TEXT    NOT NULL DEFAULT '{}',
	PRIMARY KEY (path, version)
);
CREATE TABLE resource_heads (
	path    TEXT    NOT NULL PRIMARY KEY,
	version INTEGER NOT NULL,
	deleted INTEGER NOT NULL
);
CREATE TABLE policies (
	scope      TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	rego       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (scope, version)
);
CREATE TABLE policy_heads (
	scope   TEXT    NOT NULL PRIMARY KEY,
	version INTEGER NOT NULL
);
CREATE TABLE audit (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	time         INTEGER NOT NULL,
	decision     TEXT    NOT NULL,
	reason       TEXT    NOT NULL,
	resource     TEXT    NOT NULL,
	token_digest TEXT    NOT NULL,
	policy_id    TEXT    NOT NULL,
	requester    TEXT    NOT NULL,
	tee          TEXT    NOT NULL,
	measurement  TEXT    NOT NULL
);
`,
	`
CREATE TABLE collaborations (
	id         TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	file       BLOB    NOT NULL,
	created_at INTEGER NOT NULL, -- Unix microseconds, UTC
	PRIMARY KEY (id, version)
);
CREATE TABLE ephemeral (
	key     TEXT    NOT NULL PRIMARY KEY,
	value   BLOB    NOT NULL,
	expires INTEGER NOT NULL -- Unix microseconds
);
CREATE INDEX ephemeral_expires ON ephemeral (expires);
`,
	`
ALTER TABLE audit ADD COLUMN collaboration TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN manifest_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN analysis      TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN run_id        TEXT NOT NULL DEFAULT '';
`,
	`
CREATE TABLE runs (
	id            TEXT    NOT NULL PRIMARY KEY,
	collaboration TEXT    NOT NULL,
	analysis      TEXT    NOT NULL,
	submitted_by  TEXT    NOT NULL,
	submitted_at  INTEGER NOT NULL, -- Unix microseconds, UTC
	state         TEXT    NOT NULL,
	worker        TEXT    NOT NULL DEFAULT '',
	lease_until   INTEGER,          -- Unix microseconds while running, else NULL
	attempts      INTEGER NOT NULL DEFAULT 0,
	result        TEXT    NOT NULL DEFAULT '',
	receipt       TEXT    NOT NULL DEFAULT '',
	error         TEXT    NOT NULL DEFAULT '',
	updated_at    INTEGER NOT NULL
);
-- ClaimRun scans the unfinished runs, oldest first.
CREATE INDEX runs_claim ON runs (submitted_at, id) WHERE state IN ('queued', 'running');
-- ListRuns, newest first: all runs, or one collaboration's.
CREATE INDEX runs_submitted ON runs (submitted_at, id);
CREATE INDEX runs_collaboration ON runs (collaboration, submitted_at, id);
`,
	`
CREATE TABLE revocations (
	digest        TEXT    NOT NULL PRIMARY KEY, -- hex SHA-256 of the statement
	collaboration TEXT    NOT NULL,
	signer        TEXT    NOT NULL,
	party         TEXT    NOT NULL,
	revoked_at    INTEGER NOT NULL, -- Unix microseconds, UTC
	statement     BLOB    NOT NULL,
	stored_at     INTEGER NOT NULL
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

// migrate creates or upgrades the schema inside one write transaction.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store/sqlite: open: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("store/sqlite: migrate: %w", err)
	}
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("store/sqlite: migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("store/sqlite: migrate: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("%w: database schema %d, this build knows up to %d", store.ErrSchemaVersion, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("store/sqlite: migrate to schema %d: %w", v+1, err)
		}
		s.log.InfoContext(ctx, "key broker store migrated", "backend", "sqlite", "schema", v+1)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v); err != nil {
		return fmt.Errorf("store/sqlite: migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store/sqlite: migrate: %w", err)
	}
	return nil
}

// checkpointEvery is how often the WAL is copied back into the database.
const checkpointEvery = 250 * time.Millisecond

// checkpoint runs a passive checkpoint, which never blocks writers or
// readers; the store runs one every checkpointEvery. SQLite's automatic
// checkpoint would instead run inside whichever commit crosses the
// threshold, stalling every release waiting on that commit for the
// database file's fsync.
func (s *Store) checkpoint() {
	if _, err := s.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		s.log.Warn("key broker store: WAL checkpoint failed", "err", err)
	}
}

// every runs fn at each tick of interval until Close, then closes done.
func (s *Store) every(interval time.Duration, done chan struct{}, fn func()) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// Close closes the database. Calling it twice is harmless.
func (s *Store) Close() error {
	s.closer.Do(func() {
		close(s.stop)
		<-s.ckptDone
		<-s.purgeDone
		s.cerr = errors.Join(s.r.Close(), s.ckpt.Close(), s.w.Close())
	})
	return s.cerr
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// write runs fn in a write transaction and commits it.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store/sqlite: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store/sqlite: commit: %w", err)
	}
	return nil
}

// PutResource appends a new version of r.Path.
func (s *Store) PutResource(ctx context.Context, r *store.Resource) (int64, error) {
	rec, meta, err := record.Resource(r, s.now)
	if err != nil {
		return 0, err
	}
	var version int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		var err error
		version, err = appendResource(ctx, tx, &rec, meta)
		return err
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// appendResource assigns the next version of rec.Path and inserts it.
func appendResource(ctx context.Context, tx *sql.Tx, rec *store.Resource, meta string) (int64, error) {
	var version int64
	err := tx.QueryRowContext(ctx, `
INSERT INTO resource_heads (path, version, deleted) VALUES (?1, 1, ?2)
ON CONFLICT (path) DO UPDATE SET version = version + 1, deleted = excluded.deleted
RETURNING version`, rec.Path, rec.Deleted).Scan(&version)
	if err != nil {
		return 0, fmt.Errorf("store/sqlite: put %s: %w", rec.Path, err)
	}
	_, err = tx.ExecContext(ctx, `
INSERT INTO resources (path, version, sealed, wrapped_dek, kek_id, deleted, created_at, created_by, policy_id, metadata)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		rec.Path, version, rec.Sealed, rec.WrappedDEK, rec.KEKID, rec.Deleted, micros(rec.CreatedAt), rec.CreatedBy, rec.PolicyID, meta)
	if err != nil {
		return 0, fmt.Errorf("store/sqlite: put %s: %w", rec.Path, err)
	}
	return version, nil
}

const resourceColumns = `r.path, r.version, r.sealed, r.wrapped_dek, r.kek_id, r.deleted, r.created_at, r.created_by, r.policy_id, r.metadata`

func scanResource(row interface{ Scan(...any) error }) (*store.Resource, error) {
	var (
		r    store.Resource
		at   int64
		meta string
	)
	if err := row.Scan(&r.Path, &r.Version, &r.Sealed, &r.WrappedDEK, &r.KEKID, &r.Deleted, &at, &r.CreatedBy, &r.PolicyID, &meta); err != nil {
		return nil, err
	}
	r.CreatedAt = fromMicros(at)
	m, err := record.DecodeMetadata(meta)
	if err != nil {
		return nil, err
	}
	r.Metadata = m
	return &r, nil
}

const getResourceSQL = `
SELECT ` + resourceColumns + ` FROM resource_heads h JOIN resources r ON r.path = h.path AND r.version = h.version
WHERE h.path = ? AND h.deleted = 0`

// auditChunks is the number of multi-row audit inserts, auditChunk(i)
// records each: 64, 16, 4 and 1. A batch is written in as few of them as
// its size allows.
const auditChunks = 4

func auditChunk(i int) int { return 64 >> (2 * i) }

// insertAuditSQL inserts n audit records with their sequence numbers.
func insertAuditSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO audit (seq, time, decision, reason, resource, token_digest, policy_id, requester, tee, measurement,
	collaboration, manifest_hash, analysis, run_id, epsilon) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// lastAuditSeqSQL is the largest audit sequence number ever given: the
// AUTOINCREMENT counter, or the largest stored (there is no counter before
// the first row).
const lastAuditSeqSQL = `
SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0), COALESCE((SELECT MAX(seq) FROM audit), 0))`

// GetResource returns the latest version of path unless it is a tombstone.
func (s *Store) GetResource(ctx context.Context, path string) (*store.Resource, error) {
	if err := store.ValidatePath(path); err != nil {
		return nil, err
	}
	r, err := scanResource(s.getResource.QueryRowContext(ctx, path))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: resource %s", store.ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: get %s: %w", path, err)
	}
	return r, nil
}

// GetResourceVersion returns one version of path, tombstones included.
func (s *Store) GetResourceVersion(ctx context.Context, path string, version int64) (*store.Resource, error) {
	if err := store.ValidatePath(path); err != nil {
		return nil, err
	}
	r, err := scanResource(s.r.QueryRowContext(ctx, `
SELECT `+resourceColumns+` FROM resources r WHERE r.path = ? AND r.version = ?`, path, version))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: resource %s version %d", store.ErrNotFound, path, version)
	}
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: get %s version %d: %w", path, version, err)
	}
	return r, nil
}

// ListResources returns the latest live version of each path under prefix.
func (s *Store) ListResources(ctx context.Context, prefix string) ([]store.Resource, error) {
	if err := record.Prefix(prefix); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `
SELECT r.path, r.version, NULL, NULL, r.kek_id, r.deleted, r.created_at, r.created_by, r.policy_id, r.metadata
FROM resource_heads h JOIN resources r ON r.path = h.path AND r.version = h.version
WHERE h.deleted = 0 AND substr(h.path, 1, length(?1)) = ?1
ORDER BY h.path`, prefix)
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: list: %w", err)
	}
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, fmt.Errorf("store/sqlite: list: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/sqlite: list: %w", err)
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		var deleted bool
		err := tx.QueryRowContext(ctx, `SELECT deleted FROM resource_heads WHERE path = ?`, path).Scan(&deleted)
		if errors.Is(err, sql.ErrNoRows) || deleted {
			return fmt.Errorf("%w: resource %s", store.ErrNotFound, path)
		}
		if err != nil {
			return fmt.Errorf("store/sqlite: delete %s: %w", path, err)
		}
		version, err = appendResource(ctx, tx, &rec, "{}")
		return err
	})
	if err != nil {
		return 0, err
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
		batch, err := s.rewrapBatch(ctx, afterPath, afterVer)
		if err != nil {
			return n, err
		}
		if len(batch) == 0 {
			return n, nil
		}
		afterPath, afterVer = batch[len(batch)-1].Path, batch[len(batch)-1].Version
		type update struct {
			path         string
			version      int64
			oldID, newID string
			wrapped      []byte
		}
		var updates []update
		for i := range batch {
			r := &batch[i]
			oldID := r.KEKID
			wrapped, id, err := fn(r)
			if err != nil {
				return n, fmt.Errorf("store/sqlite: rewrap %s version %d: %w", batch[i].Path, batch[i].Version, err)
			}
			if id == oldID {
				continue
			}
			if err := record.Rewrapped(wrapped, id); err != nil {
				return n, err
			}
			updates = append(updates, update{batch[i].Path, batch[i].Version, oldID, id, wrapped})
		}
		if len(updates) == 0 {
			continue
		}
		done := 0
		err = s.write(ctx, func(tx *sql.Tx) error {
			for _, u := range updates {
				res, err := tx.ExecContext(ctx, `UPDATE resources SET wrapped_dek = ?, kek_id = ? WHERE path = ? AND version = ? AND kek_id = ?`,
					u.wrapped, u.newID, u.path, u.version, u.oldID)
				if err != nil {
					return fmt.Errorf("store/sqlite: rewrap %s version %d: %w", u.path, u.version, err)
				}
				k, err := res.RowsAffected()
				if err != nil {
					return fmt.Errorf("store/sqlite: rewrap: %w", err)
				}
				done += int(k)
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		n += done
		s.log.InfoContext(ctx, "key broker store rewrapped batch", "backend", "sqlite", "versions", done, "total", n)
	}
}

func (s *Store) rewrapBatch(ctx context.Context, afterPath string, afterVer int64) ([]store.Resource, error) {
	rows, err := s.r.QueryContext(ctx, `
SELECT r.path, r.version, NULL, r.wrapped_dek, r.kek_id, r.deleted, r.created_at, r.created_by, r.policy_id, r.metadata
FROM resources r WHERE r.deleted = 0 AND (r.path, r.version) > (?, ?)
ORDER BY r.path, r.version LIMIT ?`, afterPath, afterVer, record.RewrapBatch)
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: rewrap: %w", err)
	}
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		r, err := scanResource(rows)
		if err != nil {
			return nil, fmt.Errorf("store/sqlite: rewrap: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/sqlite: rewrap: %w", err)
	}
	return out, nil
}

// PutPolicy appends a new version of p.Scope.
func (s *Store) PutPolicy(ctx context.Context, p *store.Policy) (int64, error) {
	rec, err := record.Policy(p, s.now)
	if err != nil {
		return 0, err
	}
	var version int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `
INSERT INTO policy_heads (scope, version) VALUES (?, 1)
ON CONFLICT (scope) DO UPDATE SET version = version + 1
RETURNING version`, rec.Scope).Scan(&version)
		if err != nil {
			return fmt.Errorf("store/sqlite: put policy %s: %w", rec.Scope, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO policies (scope, version, rego, created_at, created_by) VALUES (?, ?, ?, ?, ?)`,
			rec.Scope, version, rec.Rego, micros(rec.CreatedAt), rec.CreatedBy)
		if err != nil {
			return fmt.Errorf("store/sqlite: put policy %s: %w", rec.Scope, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return version, nil
}

// GetPolicy returns the latest version of the policy for scope.
func (s *Store) GetPolicy(ctx context.Context, scope string) (*store.Policy, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	var (
		p  store.Policy
		at int64
	)
	err := s.r.QueryRowContext(ctx, `
SELECT p.scope, p.version, p.rego, p.created_at, p.created_by
FROM policy_heads h JOIN policies p ON p.scope = h.scope AND p.version = h.version WHERE h.scope = ?`, scope).
		Scan(&p.Scope, &p.Version, &p.Rego, &at, &p.CreatedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: policy %s", store.ErrNotFound, scope)
	}
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: get policy %s: %w", scope, err)
	}
	p.CreatedAt = fromMicros(at)
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

// flushAudit writes a batch of audit records in one transaction: a few
// multi-row inserts (auditChunk) rather than one statement per record.
// The transaction holds the database's write lock (BEGIN IMMEDIATE), so the
// records take the numbers after the largest ever given, in order, as
// AUTOINCREMENT would give them; a number already taken fails the whole
// batch on the primary key rather than reusing it.
func (s *Store) flushAudit(ctx context.Context, recs []store.AuditRecord) ([]int64, error) {
	seqs := make([]int64, 0, len(recs))
	err := s.write(ctx, func(tx *sql.Tx) error {
		var last int64
		if err := tx.StmtContext(ctx, s.lastAuditSeq).QueryRowContext(ctx).Scan(&last); err != nil {
			return fmt.Errorf("store/sqlite: audit: %w", err)
		}
		args := make([]any, 0, 15*min(len(recs), auditChunk(0)))
		for rest := recs; len(rest) > 0; {
			i := 0
			for auditChunk(i) > len(rest) {
				i++
			}
			n := auditChunk(i)
			args = args[:0]
			for _, a := range rest[:n] {
				last++
				seqs = append(seqs, last)
				args = append(args, last, micros(a.Time), a.Decision, a.Reason, a.Resource, a.TokenDigest, a.PolicyID, a.Requester, a.TEE, a.Measurement,
					a.Collaboration, a.ManifestHash, a.Analysis, a.RunID, a.Epsilon)
			}
			if _, err := tx.StmtContext(ctx, s.insertAudit[i]).ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("store/sqlite: audit: %w", err)
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return seqs, nil
}

// CountRuns implements store.Store.
func (s *Store) CountRuns(ctx context.Context, collaboration, analysis, except string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `
SELECT COUNT(DISTINCT run_id) FROM audit
WHERE decision = 'released' AND collaboration = ? AND analysis = ? AND run_id <> '' AND run_id <> ?`,
		collaboration, analysis, except).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: count runs: %w", err)
	}
	return n, nil
}

// RunSpends implements store.Store.
func (s *Store) RunSpends(ctx context.Context, collaboration, resource string) ([]store.RunSpend, error) {
	rows, err := s.r.QueryContext(ctx, `
SELECT DISTINCT run_id, epsilon FROM audit
WHERE decision = 'released' AND collaboration = ? AND resource = ? AND epsilon <> '' AND run_id <> ''
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
	rows, err := s.r.QueryContext(ctx, `
SELECT seq, time, decision, reason, resource, token_digest, policy_id, requester, tee, measurement,
	collaboration, manifest_hash, analysis, run_id, epsilon
FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, record.ListLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: list audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var (
			a  store.AuditRecord
			at int64
		)
		if err := rows.Scan(&a.Seq, &at, &a.Decision, &a.Reason, &a.Resource, &a.TokenDigest, &a.PolicyID, &a.Requester, &a.TEE, &a.Measurement,
			&a.Collaboration, &a.ManifestHash, &a.Analysis, &a.RunID, &a.Epsilon); err != nil {
			return nil, fmt.Errorf("store/sqlite: list audit: %w", err)
		}
		a.Time = fromMicros(at)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/sqlite: list audit: %w", err)
	}
	return out, nil
}

// PutCollaboration stores file as version of collaboration id if the latest
// stored version is version-1, and fails with store.ErrConflict otherwise. A
// version below 1 can never be stored: it is store.ErrInvalid, not a
// conflict to retry.
func (s *Store) PutCollaboration(ctx context.Context, id string, file []byte, version int64) error {
	if err := store.CheckCollaboration(id, file, version); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
INSERT INTO collaborations (id, version, file, created_at)
SELECT ?1, ?2, ?3, ?4 WHERE (SELECT coalesce(max(version), 0) FROM collaborations WHERE id = ?1) = ?2 - 1`,
			id, version, file, micros(s.now()))
		if err != nil {
			return fmt.Errorf("store/sqlite: put collaboration %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store/sqlite: put collaboration %s: %w", id, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: collaboration %s version %d is not the next", store.ErrConflict, id, version)
		}
		return nil
	})
}

// GetCollaboration returns the latest stored file of collaboration id.
func (s *Store) GetCollaboration(ctx context.Context, id string) ([]byte, int64, error) {
	if err := store.CheckCollaborationID(id); err != nil {
		return nil, 0, err
	}
	var (
		file    []byte
		version int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT file, version FROM collaborations WHERE id = ? ORDER BY version DESC LIMIT 1`, id).Scan(&file, &version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("%w: collaboration %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store/sqlite: get collaboration %s: %w", id, err)
	}
	return file, version, nil
}
