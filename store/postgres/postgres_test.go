package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/storetest"
)

// testURL returns the server the tests use: KURA_TEST_POSTGRES_URL. Without
// it the tests skip, except in CI (CI=true), which always provides a server.
func testURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("KURA_TEST_POSTGRES_URL")
	if url != "" {
		return url
	}
	const msg = "KURA_TEST_POSTGRES_URL is not set; start a server with: eval \"$(sudo .ci/postgres.sh)\""
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: PostgreSQL tests must run)")
	}
	t.Skip(msg)
	return ""
}

// schemas hands out one PostgreSQL schema per (test, database name), so
// tests share a server without sharing data; all are dropped at the end.
type schemas struct {
	url   string
	admin *pgxpool.Pool
	run   string
	mu    sync.Mutex
	names map[string]bool
}

func newSchemas(t *testing.T) *schemas {
	url := testURL(t)
	admin, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	sc := &schemas{url: url, admin: admin, run: hex.EncodeToString(b), names: map[string]bool{}}
	t.Cleanup(func() {
		for name := range sc.names {
			if _, err := admin.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
				t.Errorf("drop schema %s: %v", name, err)
			}
		}
		admin.Close()
	})
	return sc
}

// url returns a URL whose search_path is the schema for (t, db).
func (sc *schemas) urlFor(t *testing.T, db string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(t.Name() + "\x00" + db))
	name := "kt_" + sc.run + "_" + hex.EncodeToString(sum[:6])
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.names[name] {
		if _, err := sc.admin.Exec(context.Background(), `CREATE SCHEMA `+pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		sc.names[name] = true
	}
	sep := "?"
	if strings.Contains(sc.url, "?") {
		sep = "&"
	}
	return sc.url + sep + "search_path=" + name
}

func (sc *schemas) open(t *testing.T, db string) *Store {
	t.Helper()
	s, err := New(context.Background(), Config{URL: sc.urlFor(t, db), MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	sc := newSchemas(t)
	storetest.Run(t, func(t *testing.T, db string) store.Store { return sc.open(t, db) })
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	sc := newSchemas(t)
	url := sc.urlFor(t, "db")

	// Replicas starting together migrate once.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := New(ctx, Config{URL: url})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent open: %v", err)
	}

	s := sc.open(t, "db")
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema_version = %d, %v", v, err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM schema_version`).Scan(&n); err != nil || n != 1 {
		t.Errorf("schema_version has %d rows, %v", n, err)
	}
	// Durability: synchronous_commit is never off on the store's sessions.
	if _, err := sc.admin.Exec(ctx, `ALTER ROLE CURRENT_USER SET synchronous_commit = off`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.admin.Exec(ctx, `ALTER ROLE CURRENT_USER RESET synchronous_commit`) })
	s2 := sc.open(t, "db")
	var sync string
	if err := s2.pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sync); err != nil || sync != "on" {
		t.Errorf("synchronous_commit = %q, %v; want on", sync, err)
	}

	if _, err := s.pool.Exec(ctx, `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Config{URL: url}); !errors.Is(err, store.ErrSchemaVersion) {
		t.Errorf("New(newer schema) = %v; want ErrSchemaVersion", err)
	}
	if _, err := New(ctx, Config{URL: "postgres://u:secret-pw@[::1"}); !errors.Is(err, store.ErrInvalid) || strings.Contains(fmt.Sprint(err), "secret-pw") {
		t.Errorf("New(bad URL) = %v; want ErrInvalid without the password", err)
	}
}

// TestUpgrade: a database written by schema 2, before the audit trail named
// clean-room runs, by schema 3, before the run queue, or by schema 4,
// before revocations, keeps its audit records when this build opens it,
// queues runs and stores revocations.
func TestUpgrade(t *testing.T) {
	ctx := context.Background()
	sc := newSchemas(t)
	for _, from := range []int{2, 3, 4} {
		t.Run(fmt.Sprint("schema", from), func(t *testing.T) {
			url := sc.urlFor(t, "db")
			db, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			stmts := append([]string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`, fmt.Sprintf(`INSERT INTO schema_version (version) VALUES (%d)`, from)},
				migrations[:from]...)
			for _, q := range stmts {
				if _, err := db.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			for _, a := range storetest.OldAudit {
				if _, err := db.Exec(ctx, `INSERT INTO audit (seq, time, decision, reason, resource, token_digest, policy_id, requester, tee, measurement)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, a.Seq, a.Time, a.Decision, a.Reason, a.Resource, a.TokenDigest, a.PolicyID, a.Requester, a.TEE, a.Measurement); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Exec(ctx, `UPDATE audit_head SET seq = $1`, len(storetest.OldAudit)); err != nil {
				t.Fatal(err)
			}
			db.Close()
			s := sc.open(t, "db")
			var v int
			if err := s.pool.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations) {
				t.Errorf("schema_version after the upgrade = %d, %v; want %d", v, err, len(migrations))
			}
			storetest.CheckUpgradedAudit(t, s)
			storetest.CheckUpgradedRuns(t, s)
			storetest.CheckUpgradedRevocations(t, s)
		})
	}
}

// TestEphemeralBound checks Config.MaxEphemeral, the purge that
// resynchronises the live count and the ephemeral pool's asynchronous
// commits.
func TestEphemeralBound(t *testing.T) {
	ctx := context.Background()
	sc := newSchemas(t)
	url := sc.urlFor(t, "db")
	var first *Store
	storetest.EphemeralBound(t, storetest.BoundedEphemeral{
		Open: func() store.Store {
			s, err := New(ctx, Config{URL: url, MaxEphemeral: 3})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			if first == nil {
				first = s
				for pool, want := range map[*pgxpool.Pool]string{s.pool: "on", s.eph: "off"} {
					var sync string
					if err := pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sync); err != nil || sync != want {
						t.Errorf("synchronous_commit = %q, %v; want %s", sync, err, want)
					}
				}
			}
			return s
		},
		InsertExpired: func(n int) {
			if _, err := first.pool.Exec(ctx, `
INSERT INTO ephemeral (key, value, expires)
SELECT 'old/' || i, '', 'epoch' FROM generate_series(1, $1::int) i`, n); err != nil {
				t.Fatal(err)
			}
		},
		Purge: func() {
			if err := first.purgeEphemeral(ctx); err != nil {
				t.Fatal(err)
			}
		},
		Count: func() int {
			var n int
			if err := first.pool.QueryRow(ctx, `SELECT count(*) FROM ephemeral`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}
