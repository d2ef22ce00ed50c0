package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/internal/record"
)

const runColumns = `id, collaboration, analysis, submitted_by, submitted_at, state, worker, lease_until, attempts, result, receipt, error, updated_at`

func scanRun(row pgx.Row) (*store.Run, error) {
	var (
		r     store.Run
		lease *time.Time
	)
	if err := row.Scan(&r.ID, &r.Collaboration, &r.Analysis, &r.SubmittedBy, &r.SubmittedAt, &r.State, &r.Worker, &lease,
		&r.Attempts, &r.Result, &r.Receipt, &r.Error, &r.UpdatedAt); err != nil {
		return nil, err
	}
	r.SubmittedAt, r.UpdatedAt = r.SubmittedAt.UTC(), r.UpdatedAt.UTC()
	if lease != nil {
		r.LeaseUntil = lease.UTC()
	}
	return &r, nil
}

// PutRun inserts r as queued; see store.Store.
func (s *Store) PutRun(ctx context.Context, r *store.Run) error {
	rec, err := record.Run(r, s.now)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO runs (id, collaboration, analysis, submitted_by, submitted_at, state, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		rec.ID, rec.Collaboration, rec.Analysis, rec.SubmittedBy, rec.SubmittedAt, rec.State, rec.UpdatedAt)
	if err != nil {
		return fmt.Errorf("store/postgres: put run %s: %w", rec.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: run %s exists", store.ErrConflict, rec.ID)
	}
	return nil
}

// GetRun returns the run id.
func (s *Store) GetRun(ctx context.Context, id string) (*store.Run, error) {
	if !record.RunID(id) {
		return nil, fmt.Errorf("%w: run id is not 32 lowercase hex characters", store.ErrNotFound)
	}
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runColumns+` FROM runs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: run %s", store.ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("store/postgres: get run %s: %w", id, err)
	}
	return r, nil
}

// ListRuns returns up to limit runs of collaboration ("" all), newest
// first.
func (s *Store) ListRuns(ctx context.Context, collaboration string, limit int) ([]store.Run, error) {
	var (
		rows pgx.Rows
		err  error
	)
	if collaboration == "" {
		rows, err = s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs ORDER BY submitted_at DESC, id DESC LIMIT $1`, record.ListLimit(limit))
	} else {
		if err := store.CheckCollaborationID(collaboration); err != nil {
			return nil, err
		}
		rows, err = s.pool.Query(ctx, `SELECT `+runColumns+` FROM runs WHERE collaboration = $1
ORDER BY submitted_at DESC, id DESC LIMIT $2`, collaboration, record.ListLimit(limit))
	}
	if err != nil {
		return nil, fmt.Errorf("store/postgres: list runs: %w", err)
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("store/postgres: list runs: %w", err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/postgres: list runs: %w", err)
	}
	return out, nil
}

// claimRunSQL takes the oldest claimable run that no concurrent claim has
// locked: $1 worker, $2 now, $3 max attempts, $4 lease expiry. A run
// claimed $3 times already is failed instead, and comes back so.
const claimRunSQL = `
UPDATE runs SET
	state       = CASE WHEN attempts >= $3::integer THEN 'failed' ELSE 'running' END,
	worker      = CASE WHEN attempts >= $3::integer THEN worker ELSE $1::text END,
	lease_until = CASE WHEN attempts >= $3::integer THEN NULL ELSE $4::timestamptz END,
	error       = CASE WHEN attempts >= $3::integer THEN 'gave up after ' || attempts || ' attempts' ELSE error END,
	attempts    = CASE WHEN attempts >= $3::integer THEN attempts ELSE attempts + 1 END,
	updated_at  = $2::timestamptz
WHERE id = (
	SELECT id FROM runs
	WHERE state IN ('queued', 'running') AND (state = 'queued' OR lease_until < $2::timestamptz)
	ORDER BY submitted_at, id LIMIT 1
	FOR UPDATE SKIP LOCKED)
RETURNING ` + runColumns

// ClaimRun takes the oldest claimable run for worker; see store.Store.
// Each step is one statement whose row lock (SKIP LOCKED) keeps
// concurrent claims, from any replica, off the run it takes.
func (s *Store) ClaimRun(ctx context.Context, worker string, now time.Time, lease time.Duration, maxAttempts int) (*store.Run, error) {
	now, until, maxAttempts, err := record.Claim(worker, now, lease, maxAttempts, s.now)
	if err != nil {
		return nil, err
	}
	for {
		r, err := scanRun(s.pool.QueryRow(ctx, claimRunSQL, worker, now, maxAttempts, until))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%w: no run to claim", store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("store/postgres: claim run: %w", err)
		}
		if r.State == store.RunRunning {
			return r, nil
		}
		s.log.WarnContext(ctx, "run failed: claimed too often", "run_id", r.ID, "collaboration", r.Collaboration,
			"analysis", r.Analysis, "attempts", r.Attempts, "last_worker", r.Worker)
	}
}

// heldBy explains a conditional update of run id by worker that changed
// no row: ErrNotFound or ErrConflict.
func (s *Store) heldBy(ctx context.Context, id, worker string) error {
	var state string
	err := s.pool.QueryRow(ctx, `SELECT state FROM runs WHERE id = $1`, id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: run %s", store.ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("store/postgres: run %s: %w", id, err)
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
	tag, err := s.pool.Exec(ctx, `UPDATE runs SET lease_until = $1, updated_at = $2 WHERE id = $3 AND state = 'running' AND worker = $4`,
		record.Time(until, s.now), record.Time(time.Time{}, s.now), id, worker)
	if err != nil {
		return fmt.Errorf("store/postgres: renew run %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return s.heldBy(ctx, id, worker)
	}
	return nil
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
	tag, err := s.pool.Exec(ctx, `
UPDATE runs SET state = $1, result = $2, receipt = $3, error = $4, lease_until = NULL, updated_at = $5
WHERE id = $6 AND state = 'running' AND worker = $7`,
		state, result, receipt, errText, record.Time(time.Time{}, s.now), id, worker)
	if err != nil {
		return fmt.Errorf("store/postgres: finish run %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return s.heldBy(ctx, id, worker)
	}
	return nil
}
