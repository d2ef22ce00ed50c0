package postgres

import (
	"context"
	"fmt"

	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/store/internal/record"
)

// PutRevocation stores r once; see store.Store. Of replicas storing the
// same revocation at once, one creates it.
func (s *Store) PutRevocation(ctx context.Context, r *store.Revocation) (bool, error) {
	rec, err := record.Revocation(r, s.now)
	if err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO revocations (digest, collaboration, signer, party, revoked_at, statement, stored_at)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (digest) DO NOTHING`,
		rec.Digest, rec.Collaboration, rec.Signer, rec.Party, rec.RevokedAt, rec.Statement, rec.StoredAt)
	if err != nil {
		return false, fmt.Errorf("store/postgres: put revocation: %w", err)
	}
	return tag.RowsAffected() > 0, nil
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
	rows, err := s.pool.Query(ctx, `
SELECT digest, collaboration, signer, party, revoked_at, statement, stored_at FROM revocations
WHERE collaboration = $1 AND signer = $2 ORDER BY revoked_at DESC, digest LIMIT $3`, collaboration, signer, record.ListLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("store/postgres: list revocations: %w", err)
	}
	defer rows.Close()
	var out []store.Revocation
	for rows.Next() {
		var r store.Revocation
		if err := rows.Scan(&r.Digest, &r.Collaboration, &r.Signer, &r.Party, &r.RevokedAt, &r.Statement, &r.StoredAt); err != nil {
			return nil, fmt.Errorf("store/postgres: list revocations: %w", err)
		}
		r.RevokedAt, r.StoredAt = r.RevokedAt.UTC(), r.StoredAt.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/postgres: list revocations: %w", err)
	}
	return out, nil
}
