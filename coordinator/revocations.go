package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// ErrRevoked means a run was refused because an owner of the data it
// reads revoked its approval (409 "approval-revoked"). The key brokers
// holding that owner's keys refuse them too; they are what enforces it.
var ErrRevoked = fault.NewCode(nil, fault.Conflict, "approval-revoked", "approval revoked")

// revoke adds a party's signed revocation of its approval to the stored
// collaboration file (docs/spec/manifest.md §5.4), after recording it in
// the log. The revocation authenticates itself: it must verify under the
// card of the party it names, in the stored version it names. A
// revocation the file holds already is answered as stored.
func (c *Coordinator) revoke(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, collab.MaxRevocationSize)
	if err != nil {
		return err
	}
	rev, err := collab.ParseRevocation(body)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if rev.Collaboration != id {
		return fmt.Errorf("%w: the revocation is for collaboration %q, the URL says %q", ErrRefused, rev.Collaboration, id)
	}
	if err := rev.CheckTime(c.now()); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	data, version, err := c.store.GetCollaboration(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no such collaboration", err)
	}
	if err != nil {
		return err
	}
	col, err := collab.ParseCollaboration(data)
	if err != nil {
		return fmt.Errorf("stored collaboration %s: %w", id, err)
	}
	p, err := col.VerifyRevocation(rev)
	if err != nil {
		c.slog.WarnContext(r.Context(), "revocation refused", "collaboration", id, "requester", web.ClientAddr(r), "reason", err)
		return err
	}
	added, err := col.AddRevocation(rev)
	if err != nil {
		return err
	}
	resp := PutResponse{Versions: len(col.Versions), Approvals: len(col.Approvals), Revocations: len(col.Revocations)}
	if !added {
		return web.WriteJSON(w, http.StatusOK, resp) // stored and logged already
	}
	file, err := col.Marshal()
	if err != nil {
		return err
	}
	if len(file) > collab.MaxCollaborationSize {
		return fmt.Errorf("%w: the collaboration file would grow past %d bytes", ErrRefused, collab.MaxCollaborationSize)
	}
	if err := c.logRevocation(r.Context(), col, rev, c.now().UTC(), &resp); err != nil {
		return err
	}
	err = c.store.PutCollaboration(r.Context(), id, file, version+1)
	if errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: the collaboration changed while the revocation was added: send it again", err)
	}
	if err != nil {
		return err
	}
	c.slog.InfoContext(r.Context(), "approval revoked", "collaboration", id, "party", p.Name, "fingerprint", p.Card.Fingerprint,
		"revoked_at", rev.RevokedAt, "manifest_hash", rev.ManifestHash, "requester", web.ClientAddr(r))
	return web.WriteJSON(w, http.StatusOK, resp)
}

// logRevocation records a revocation in the log: the party's fingerprint,
// the SHA-256 of its signature and the manifest version it names.
func (c *Coordinator) logRevocation(ctx context.Context, col *collab.Collaboration, rev *collab.Revocation, now time.Time, resp *PutResponse) error {
	e := &auditlog.Entry{Kind: auditlog.KindRevocation, Time: now, Collaboration: col.ID, Party: rev.Party, Subject: "sha256:" + rev.Digest()}
	for i, m := range col.Versions {
		if m.Hash() == rev.ManifestHash {
			e.Version = uint64(i + 1)
		}
	}
	return c.append(ctx, e, resp)
}

// checkTimes refuses revocations dated in the future of the clock.
func checkTimes(revs []*collab.Revocation, now time.Time) error {
	for _, r := range revs {
		if err := r.CheckTime(now); err != nil {
			return err
		}
	}
	return nil
}
