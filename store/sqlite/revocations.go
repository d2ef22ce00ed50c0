package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/internal/record"
)

// PutRevocation stores r once; see store.Store.
func (s *Store) PutRevocation(ctx context.Context, r *store.Revocation) (bool, error) {
	rec, err := record.Revocation(r, s.now)
	if err != nil {
		return false, err
	}
	var created bool
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
INSERT INTO revocations (digest, collaboration, signer, party, revoked_at, statement, stored_at)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
			rec.Digest, rec.Collaboration, rec.Signer, rec.Party, micros(rec.RevokedAt), rec.Statement, micros(rec.StoredAt))
		if err != nil {
			return fmt.Errorf("store/sqlite: put revocation: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("store/sqlite: put revocation: %w", err)
		}
		created = n > 0
		return nil
	})
	return created, err
}

// ListRevocations returns signer's revocations of collaboration, latest
// first; see store.Store.
func (s *Store) ListRevocations(ctx context.Context, collaboration, signer string, limit int) ([]store.Revocation, error) {
	if err := store.CheckCollaborationID(collaboration); err != nil {
		return nil, err
	}
	if err := record.Signer(signer); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `
SELECT digest, collaboration, signer, party, revoked_at, statement, stored_at FROM revocations
WHERE collaboration = ? AND signer = ? ORDER BY revoked_at DESC, digest LIMIT ?`, collaboration, signer, record.ListLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: list revocations: %w", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var (
			r                 store.Revocation
			revoked, storedAt int64
		)
		if err := rows.Scan(&r.Digest, &r.Collaboration, &r.Signer, &r.Party, &revoked, &r.Statement, &storedAt); err != nil {
			return nil, fmt.Errorf("store/sqlite: list revocations: %w", err)
		}
		r.RevokedAt, r.StoredAt = fromMicros(revoked), fromMicros(storedAt)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/sqlite: list revocations: %w", err)
	}
	return out, nil
}
