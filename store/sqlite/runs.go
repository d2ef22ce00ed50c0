package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/internal/record"
)

const runColumns = `id, collaboration, analysis, submitted_by, submitted_at, state, worker, lease_until, attempts, result, receipt, error, updated_at`

func scanRun(row interface{ Scan(...any) error }) (*store.Run, error) {
	var (
		r                 store.Run
		submitted, update int64
		lease             sql.NullInt64
	)
	if err := row.Scan(&r.ID, &r.Collaboration, &r.Analysis, &r.SubmittedBy, &submitted, &r.State, &r.Worker, &lease,
		&r.Attempts, &r.Result, &r.Receipt, &r.Error, &update); err != nil {
		return nil, err
	}
	r.SubmittedAt, r.UpdatedAt = fromMicros(submitted), fromMicros(update)
	if lease.Valid {
		r.LeaseUntil = fromMicros(lease.Int64)
	}
	return &r, nil
}

// PutRun inserts r as queued; see store.Store.
func (s *Store) PutRun(ctx context.Context, r *store.Run) error {
	rec, err := record.Run(r, s.now)
	if err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
INSERT INTO runs (id, collaboration, analysis, submitted_by, submitted_at, state, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			rec.ID, rec.Collaboration, rec.Analysis, rec.SubmittedBy, micros(rec.SubmittedAt), rec.State, micros(rec.UpdatedAt))
		if err != nil {
			return fmt.Errorf("store/sqlite: put run %s: %w", rec.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store/sqlite: put run %s: %w", rec.ID, err)
		}
		if n == 0 {
			return fmt.Errorf("%w: run %s exists", store.ErrConflict, rec.ID)
		}
		return nil
	})
}

// GetRun returns the run id.
func (s *Store) GetRun(ctx context.Context, id string) (*store.Run, error) {
	if !record.RunID(id) {
		return nil, fmt.Errorf("%w: run id is not 32 lowercase hex characters", store.ErrNotFound)
	}
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: run %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: get run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns returns up to limit runs of collaboration ("" all), newest
// first.
func (s *Store) ListRuns(ctx context.Context, collaboration string, limit int) ([]store.Run, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if collaboration == "" {
		rows, err = s.r.QueryContext(ctx, `SELECT `+runColumns+` FROM runs ORDER BY submitted_at DESC, id DESC LIMIT ?`, record.ListLimit(limit))
	} else {
		if err := store.CheckCollaborationID(collaboration); err != nil {
			return nil, err
		}
		rows, err = s.r.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE collaboration = ?
ORDER BY submitted_at DESC, id DESC LIMIT ?`, collaboration, record.ListLimit(limit))
	}
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: list runs: %w", err)
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store/sqlite: list runs: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/sqlite: list runs: %w", err)
	}
	return out, nil
}

// claimRunSQL takes the oldest claimable run: ?1 worker, ?2 now, ?3 max
// attempts, ?4 lease expiry. A run claimed ?3 times already is failed
// instead, and comes back so.
const claimRunSQL = `
UPDATE runs SET
	state       = CASE WHEN attempts >= ?3 THEN 'failed' ELSE 'running' END,
	worker      = CASE WHEN attempts >= ?3 THEN worker ELSE ?1 END,
	lease_until = CASE WHEN attempts >= ?3 THEN NULL ELSE ?4 END,
	error       = CASE WHEN attempts >= ?3 THEN 'gave up after ' || attempts || ' attempts' ELSE error END,
	attempts    = CASE WHEN attempts >= ?3 THEN attempts ELSE attempts + 1 END,
	updated_at  = ?2
WHERE id = (
	SELECT id FROM runs
	WHERE state IN ('queued', 'running') AND (state = 'queued' OR lease_until < ?2)
	ORDER BY submitted_at, id LIMIT 1)
RETURNING ` + runColumns

// ClaimRun takes the oldest claimable run for worker; see store.Store. The
// single write connection (and BEGIN IMMEDIATE across processes) makes
// the choice and the update atomic.
func (s *Store) ClaimRun(ctx context.Context, worker string, now time.Time, lease time.Duration, maxAttempts int) (*store.Run, error) {
	now, until, maxAttempts, err := record.Claim(worker, now, lease, maxAttempts, s.now)
	if err != nil {
		return nil, err
	}
	var (
		claimed *store.Run
		gaveUp  []*store.Run
	)
	err = s.write(ctx, func(tx *sql.Tx) error {
		claimed, gaveUp = nil, nil
		for {
			r, err := scanRun(tx.QueryRowContext(ctx, claimRunSQL, worker, micros(now), maxAttempts, micros(until)))
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("store/sqlite: claim run: %w", err)
			}
			if r.State == store.RunRunning {
				claimed = r
				return nil
			}
			gaveUp = append(gaveUp, r)
		}
	})
	if err != nil {
		return nil, err
	}
	for _, r := range gaveUp {
		s.log.WarnContext(ctx, "run failed: claimed too often", "run_id", r.ID, "collaboration", r.Collaboration,
			"analysis", r.Analysis, "attempts", r.Attempts, "last_worker", r.Worker)
	}
	if claimed == nil {
		return nil, fmt.Errorf("%w: no run to claim", store.ErrNotFound)
	}
	return claimed, nil
}

// heldBy finishes a conditional update of run id by worker that changed n
// rows: nil when it changed one, else ErrNotFound or ErrConflict.
func heldBy(ctx context.Context, tx *sql.Tx, n int64, id, worker string) error {
	if n > 0 {
		return nil
	}
	var state string
	err := tx.QueryRowContext(ctx, `SELECT state FROM runs WHERE id = ?`, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: run %s", store.ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("store/sqlite: run %s: %w", id, err)
	}
	return fmt.Errorf("%w: run %s is %s, not held by %q", store.ErrConflict, id, state, worker)
}

// RenewRun extends worker's lease of run id to until.
func (s *Store) RenewRun(ctx context.Context, id, worker string, until time.Time) error {
	if err := record.Worker(worker); err != nil {
		return err
	}
	if until.IsZero() {
		return fmt.Errorf("%w: zero lease expiry", store.ErrInvalid)
	}
	if !record.RunID(id) {
		return fmt.Errorf("%w: run id is not 32 lowercase hex characters", store.ErrNotFound)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE runs SET lease_until = ?, updated_at = ? WHERE id = ? AND state = 'running' AND worker = ?`,
			micros(record.Time(until, s.now)), micros(record.Time(time.Time{}, s.now)), id, worker)
		if err != nil {
			return fmt.Errorf("store/sqlite: renew run %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store/sqlite: renew run %s: %w", id, err)
		}
		return heldBy(ctx, tx, n, id, worker)
	})
}

// FinishRun ends worker's run id in state; see store.Store.
func (s *Store) FinishRun(ctx context.Context, id, worker, state, result, receipt, errText string) error {
	if err := record.Worker(worker); err != nil {
		return err
	}
	errText, err := record.Finish(state, result, receipt, errText)
	if err != nil {
		return err
	}
	if !record.RunID(id) {
		return fmt.Errorf("%w: run id is not 32 lowercase hex characters", store.ErrNotFound)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
UPDATE runs SET state = ?, result = ?, receipt = ?, error = ?, lease_until = NULL, updated_at = ?
WHERE id = ? AND state = 'running' AND worker = ?`,
			state, result, receipt, errText, micros(record.Time(time.Time{}, s.now)), id, worker)
		if err != nil {
			return fmt.Errorf("store/sqlite: finish run %s: %w", id, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store/sqlite: finish run %s: %w", id, err)
		}
		return heldBy(ctx, tx, n, id, worker)
	})
}
