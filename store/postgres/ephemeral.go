package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kura-cc/kura/store"
)

// ephemeralConns bounds the pool of ephemeral records' connections.
const ephemeralConns = 4

// purgeEvery is how often expired ephemeral records are deleted.
const purgeEvery = 10 * time.Second

// ephemeral is the Store's store.Ephemeral.
type ephemeral struct{ s *Store }

// Ephemeral returns the store's table of short-lived records, written with
// synchronous_commit=off. The bound on live records (Config.MaxEphemeral)
// is approximate: each replica counts its own Adds and Takes, and its purge
// loop recounts the table every purgeEvery, so replicas may together
// overshoot it until then.
func (s *Store) Ephemeral() store.Ephemeral { return ephemeral{s} }

// Add implements store.Ephemeral.
func (e ephemeral) Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error) {
	now := e.s.now()
	if err := store.CheckEphemeral(key, value, expires, now); err != nil {
		return false, err
	}
	if n := e.s.live.Load(); n >= e.s.maxEph {
		return false, fmt.Errorf("%w: %d live records", store.ErrFull, n)
	}
	if value == nil {
		value = []byte{} // pgx sends nil as NULL
	}
	tag, err := e.s.eph.Exec(ctx, `
INSERT INTO ephemeral (key, value, expires) VALUES ($1, $2, $3)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires = EXCLUDED.expires WHERE ephemeral.expires <= $4`,
		key, value, expires, now)
	if err != nil {
		return false, fmt.Errorf("store/postgres: ephemeral add: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	e.s.live.Add(1)
	return true, nil
}

// Get implements store.Ephemeral.
func (e ephemeral) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return e.query(ctx, "get", `SELECT value FROM ephemeral WHERE key = $1 AND expires > $2`, key)
}

// Take implements store.Ephemeral.
func (e ephemeral) Take(ctx context.Context, key string) ([]byte, bool, error) {
	value, ok, err := e.query(ctx, "take", `DELETE FROM ephemeral WHERE key = $1 AND expires > $2 RETURNING value`, key)
	if ok {
		e.s.live.Add(-1)
	}
	return value, ok, err
}

// query runs Get's or Take's statement for the live record under key.
func (e ephemeral) query(ctx context.Context, op, sql, key string) ([]byte, bool, error) {
	if !store.ValidText(key, store.MaxEphemeralKeySize) {
		return nil, false, nil // nothing is stored under such a key
	}
	var value []byte
	err := e.s.eph.QueryRow(ctx, sql, key, e.s.now()).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("store/postgres: ephemeral %s: %w", op, err)
	}
	return value, true, nil
}

// purgeLoop deletes expired ephemeral records and recounts the live ones
// every interval until ctx is cancelled (by Close, which also interrupts a
// purge waiting on the server).
func (s *Store) purgeLoop(ctx context.Context, every time.Duration) {
	defer close(s.purgeDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.purgeEphemeral(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("key broker store: ephemeral purge failed", "err", err)
			}
		}
	}
}

// purgeEphemeral deletes expired records, then resets the live count.
func (s *Store) purgeEphemeral(ctx context.Context) error {
	if _, err := s.eph.Exec(ctx, `DELETE FROM ephemeral WHERE expires <= $1`, s.now()); err != nil {
		return fmt.Errorf("store/postgres: ephemeral purge: %w", err)
	}
	return s.countEphemeral(ctx)
}

// countEphemeral sets the live count from the table.
func (s *Store) countEphemeral(ctx context.Context) error {
	var n int64
	if err := s.eph.QueryRow(ctx, `SELECT count(*) FROM ephemeral WHERE expires > $1`, s.now()).Scan(&n); err != nil {
		return fmt.Errorf("store/postgres: ephemeral count: %w", err)
	}
	s.live.Store(n)
	return nil
}
