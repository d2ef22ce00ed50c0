package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kura-cc/kura/store"
)

// purgeEvery is how often expired ephemeral records are deleted.
const purgeEvery = 10 * time.Second

// purgeBatch bounds the records one purge transaction deletes, so that a
// purge never holds the writer for long.
const purgeBatch = 1000

const (
	addEphemeralSQL = `
INSERT INTO ephemeral (key, value, expires) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires = excluded.expires WHERE ephemeral.expires <= ?4`
	takeEphemeralSQL = `DELETE FROM ephemeral WHERE key = ? AND expires > ? RETURNING value`
)

// ephemeralOp is one Add (take false) or Take queued for the writer.
type ephemeralOp struct {
	take    bool
	key     string
	value   []byte
	expires time.Time
}

// ephemeralResult is what an ephemeralOp did: ok reports an Add that
// stored its record or a Take that found one, whose value is returned.
type ephemeralResult struct {
	value []byte
	ok    bool
}

// ephemeral is the Store's store.Ephemeral.
type ephemeral struct{ s *Store }

// Ephemeral returns the store's table of short-lived records. Its writes
// are group committed through the writer. The bound on live records
// (Config.MaxEphemeral) is approximate: each Store counts its own Adds and
// Takes, and the purge loop recounts the table every purgeEvery, so
// processes sharing the file may together overshoot it until then.
func (s *Store) Ephemeral() store.Ephemeral { return ephemeral{s} }

// Add implements store.Ephemeral.
func (e ephemeral) Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error) {
	if err := store.CheckEphemeral(key, value, expires, e.s.now()); err != nil {
		return false, err
	}
	if n := e.s.live.Load(); n >= e.s.maxEph {
		return false, fmt.Errorf("%w: %d live records", store.ErrFull, n)
	}
	if value == nil {
		value = []byte{} // NOT NULL
	}
	r, err := e.s.eph.Do(ctx, ephemeralOp{key: key, value: value, expires: expires})
	if err != nil {
		return false, err
	}
	if r.ok {
		e.s.live.Add(1)
	}
	return r.ok, nil
}

// Get implements store.Ephemeral.
func (e ephemeral) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if !store.ValidText(key, store.MaxEphemeralKeySize) {
		return nil, false, nil // nothing is stored under such a key
	}
	var value []byte
	err := e.s.r.QueryRowContext(ctx, `SELECT value FROM ephemeral WHERE key = ? AND expires > ?`, key, micros(e.s.now())).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store/sqlite: ephemeral get: %w", err)
	}
	return value, true, nil
}

// Take implements store.Ephemeral.
func (e ephemeral) Take(ctx context.Context, key string) ([]byte, bool, error) {
	if !store.ValidText(key, store.MaxEphemeralKeySize) {
		return nil, false, nil
	}
	r, err := e.s.eph.Do(ctx, ephemeralOp{take: true, key: key})
	if err != nil {
		return nil, false, err
	}
	if r.ok {
		e.s.live.Add(-1)
	}
	return r.value, r.ok, nil
}

// flushEphemeral runs a batch of ephemeral ops in one transaction, in
// order, so that each sees the ones before it.
func (s *Store) flushEphemeral(ctx context.Context, ops []ephemeralOp) ([]ephemeralResult, error) {
	out := make([]ephemeralResult, len(ops))
	now := micros(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		add, take := tx.StmtContext(ctx, s.addEphemeral), tx.StmtContext(ctx, s.takeEphemeral)
		for i, op := range ops {
			if op.take {
				err := take.QueryRowContext(ctx, op.key, now).Scan(&out[i].value)
				if errors.Is(err, sql.ErrNoRows) {
					continue
				}
				if err != nil {
					return fmt.Errorf("store/sqlite: ephemeral take: %w", err)
				}
				out[i].ok = true
				continue
			}
			res, err := add.ExecContext(ctx, op.key, op.value, micros(op.expires), now)
			if err != nil {
				return fmt.Errorf("store/sqlite: ephemeral add: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("store/sqlite: ephemeral add: %w", err)
			}
			out[i].ok = n == 1
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// purge deletes expired ephemeral records and recounts the live ones; the
// store runs it every purgeEvery.
func (s *Store) purge() {
	if err := s.purgeEphemeral(context.Background()); err != nil {
		s.log.Warn("key broker store: ephemeral purge failed", "err", err)
	}
}

// purgeEphemeral deletes expired records, purgeBatch per transaction, then
// resets the live count.
func (s *Store) purgeEphemeral(ctx context.Context) error {
	for {
		var n int64
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `
DELETE FROM ephemeral WHERE key IN (SELECT key FROM ephemeral WHERE expires <= ? LIMIT ?)`, micros(s.now()), purgeBatch)
			if err != nil {
				return fmt.Errorf("store/sqlite: ephemeral purge: %w", err)
			}
			if n, err = res.RowsAffected(); err != nil {
				return fmt.Errorf("store/sqlite: ephemeral purge: %w", err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n < purgeBatch {
			return s.countEphemeral(ctx)
		}
	}
}

// countEphemeral sets the live count from the table.
func (s *Store) countEphemeral(ctx context.Context) error {
	var n int64
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM ephemeral WHERE expires > ?`, micros(s.now())).Scan(&n); err != nil {
		return fmt.Errorf("store/sqlite: ephemeral count: %w", err)
	}
	s.live.Store(n)
	return nil
}
