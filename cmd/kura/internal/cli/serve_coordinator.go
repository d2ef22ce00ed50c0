package cli

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// coordinator keeps collaborations: it stores each collaboration file in
// the server's store (every version kept), accepts a new one only if it
// verifies and extends the stored one (same versions first, no approval
// dropped), and records every new manifest version and approval in the
// transparency log before storing it. It holds no secret and decides
// nothing: brokers and receivers check the signatures themselves; the
// coordinator makes the history public and append-only.
//
// Replicas sharing a PostgreSQL store may race on one collaboration: the
// store accepts one version n+1 and the loser is answered 409 (fetch and
// push again). The loser's new entries may already be logged: the log
// holds every stored version and approval, and can hold one whose store
// write then failed (as after a crash between the two).
type coordinator struct {
	state store.Store
	log   *auditlog.Log
	mu    sync.Mutex // serialises this process's updates
}

var errCoordinator = errors.New("collaboration refused")

// mountCoordinator mounts PUT and GET /v1/collaborations/{id}. It needs the
// log role.
func mountCoordinator(m *mountContext) error {
	if m.auditLog == nil {
		return errors.New("the coordinator needs the log role (it logs every manifest version and approval)")
	}
	if m.state == nil {
		return errors.New("the coordinator needs a store (--store)")
	}
	c := &coordinator{state: m.state, log: m.auditLog}
	mapErr := func(err error) *web.Problem {
		switch {
		case errors.Is(err, store.ErrNotFound):
			return web.NewProblem(http.StatusNotFound, "not-found", "no such collaboration", err)
		case errors.Is(err, store.ErrConflict):
			return web.NewProblem(http.StatusConflict, "concurrent-update", "the collaboration changed while this update was checked: fetch it and push again", err)
		case errors.Is(err, store.ErrInvalid):
			return web.NewProblem(http.StatusBadRequest, "bad-request", err.Error(), err)
		case errors.Is(err, errCoordinator), errors.Is(err, collab.ErrMalformedCollaboration), errors.Is(err, collab.ErrInvalidManifest),
			errors.Is(err, collab.ErrBrokenChain), errors.Is(err, collab.ErrBadApproval):
			return web.NewProblem(http.StatusConflict, "collaboration-refused", err.Error(), err)
		}
		return nil
	}
	m.mux.Handle("PUT /v1/collaborations/{id}", web.Handle(m.log, mapErr, c.put))
	m.mux.Handle("GET /v1/collaborations/{id}", web.Handle(m.log, mapErr, c.get))
	return nil
}

func (c *coordinator) get(w http.ResponseWriter, r *http.Request) error {
	file, _, err := c.state.GetCollaboration(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(file)
	return err
}

// PutResponse says what a collaboration update added to the log.
type PutResponse struct {
	Versions  int               `json:"versions"`
	Approvals int               `json:"approvals"`
	Logged    []json.RawMessage `json:"logged"` // inclusion proofs of the new entries
}

func (c *coordinator) put(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, collab.MaxCollaborationSize)
	if err != nil {
		return err
	}
	next, err := collab.ParseCollaboration(body)
	if err != nil {
		return err
	}
	if err := next.Verify(); err != nil {
		return err
	}
	if next.ID != r.PathValue("id") {
		return fmt.Errorf("%w: the file is collaboration %q, the URL says %q", errCoordinator, next.ID, r.PathValue("id"))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var prev *collab.Collaboration
	data, version, err := c.state.GetCollaboration(r.Context(), next.ID)
	switch {
	case err == nil:
		if prev, err = collab.ParseCollaboration(data); err != nil {
			return fmt.Errorf("stored collaboration %s: %w", next.ID, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	newVersions, newApprovals, err := extends(prev, next)
	if err != nil {
		return err
	}
	resp := PutResponse{Versions: len(next.Versions), Approvals: len(next.Approvals)}
	if len(newVersions) == 0 && len(newApprovals) == 0 {
		return web.WriteJSON(w, http.StatusOK, resp) // nothing new: stored and logged already
	}
	now := time.Now().UTC()
	for _, n := range newVersions {
		m := next.Version(n)
		e := &auditlog.Entry{Kind: auditlog.KindManifestVersion, Time: now, Collaboration: next.ID,
			Subject: "sha256:" + m.Hash(), Version: uint64(n)}
		if m.Previous != "" {
			e.Previous = "sha256:" + m.Previous
		}
		if err := c.append(r, e, &resp); err != nil {
			return err
		}
	}
	for _, a := range newApprovals {
		p := next.Version(a.Version).Party(a.Party)
		sum := sha256.Sum256(a.Signature)
		e := &auditlog.Entry{Kind: auditlog.KindApproval, Time: now, Collaboration: next.ID, Party: p.Card.Fingerprint,
			Subject: auditlog.Digest(sum), Version: uint64(a.Version)}
		if err := c.append(r, e, &resp); err != nil {
			return err
		}
	}
	if err := c.state.PutCollaboration(r.Context(), next.ID, body, version+1); err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, resp)
}

func (c *coordinator) append(r *http.Request, e *auditlog.Entry, resp *PutResponse) error {
	p, err := c.log.AppendAndProve(r.Context(), e)
	if err != nil {
		return err
	}
	data, err := json.Marshal(p)
	if err != nil {
		return err
	}
	resp.Logged = append(resp.Logged, data)
	return nil
}

// extends checks that next keeps everything prev had (its versions first,
// every approval) and returns what is new: version numbers and approvals.
func extends(prev, next *collab.Collaboration) ([]int, []*collab.Approval, error) {
	have := map[string]bool{}
	from := 1
	if prev != nil {
		if len(next.Versions) < len(prev.Versions) {
			return nil, nil, fmt.Errorf("%w: it has %d versions, the stored one %d: history only grows", errCoordinator, len(next.Versions), len(prev.Versions))
		}
		for i, v := range prev.Versions {
			if next.Versions[i].Hash() != v.Hash() {
				return nil, nil, fmt.Errorf("%w: version %d differs from the stored one: history is append-only", errCoordinator, i+1)
			}
		}
		for _, a := range prev.Approvals {
			have[string(a.Signature)] = true
		}
		from = len(prev.Versions) + 1
	}
	var versions []int
	for n := from; n <= len(next.Versions); n++ {
		versions = append(versions, n)
	}
	var approvals []*collab.Approval
	kept := 0
	for _, a := range next.Approvals {
		if have[string(a.Signature)] {
			kept++
			continue
		}
		approvals = append(approvals, a)
	}
	if kept < len(have) {
		return nil, nil, fmt.Errorf("%w: it drops %d stored approval(s)", errCoordinator, len(have)-kept)
	}
	return versions, approvals, nil
}
