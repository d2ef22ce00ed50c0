package keybroker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// A party withdraws its approval of a collaboration with a signed
// revocation (docs/spec/manifest.md §5.4). The brokers that hold its
// dataset keys are where that is enforced: anyone may deliver the
// revocation (it carries the party's signature), the broker keeps it if
// it holds a dataset key pinned to the signing key, and from then on
// refuses that party's keys to every run whose approval by the party was
// signed at or before it (docs/spec/cleanroom.md §3.1).

// RevocationPath is where a broker takes revocations:
// POST, a RevocationRequest as body.
const RevocationPath = "/kbs/v0/kura/revocations"

// ErrApprovalRevoked means a dataset key was refused to a run because its
// owner revoked the approval the run relies on (403 "approval-revoked").
var ErrApprovalRevoked = fault.NewCode(ErrKeyBroker, fault.Denied, "approval-revoked", "release denied: approval revoked")

// maxRevocationRequest bounds the body of POST RevocationPath: a
// collaboration file and a revocation, as JSON.
const maxRevocationRequest = MaxCollaborationSize + collab.MaxRevocationSize + 1<<10

// maxRevocationsRead bounds how many of an owner's revocations of one
// collaboration a release reads: the latest ones, of which the latest
// that verifies is the one that counts.
const maxRevocationsRead = 100

// RevocationRequest is the body of POST RevocationPath: the signed
// revocation and a collaboration file whose history holds the version
// and the party card it names.
type RevocationRequest struct {
	Revocation    json.RawMessage `json:"revocation"`
	Collaboration json.RawMessage `json:"collaboration"`
}

// RevocationResponse is the answer to an accepted revocation.
type RevocationResponse struct {
	Collaboration string    `json:"collaboration"`
	Party         string    `json:"party"`       // the party's name
	Fingerprint   string    `json:"fingerprint"` // its card's fingerprint
	RevokedAt     time.Time `json:"revoked_at"`
	// Resources are the dataset keys held here that it withholds.
	Resources []string `json:"resources"`
	// New is false when the broker held it already.
	New bool `json:"new"`
}

// AcceptRevocation verifies a revocation against a collaboration whose
// history verifies — it names a version of it and a party of that version,
// and is signed by that party's card — and keeps it if this broker holds
// a dataset key, named by the collaboration, pinned to that party's
// signing key; otherwise it keeps nothing (ErrNotFound). It is idempotent.
// requester is logged.
func (b *Broker) AcceptRevocation(ctx context.Context, revocation, collaboration []byte, requester string) (*RevocationResponse, error) {
	rev, err := collab.ParseRevocation(revocation)
	if err != nil {
		return nil, fmt.Errorf("%w: revocation: %w", ErrBadRequest, err)
	}
	c, err := collab.ParseCollaboration(collaboration)
	if err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrBadRequest, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("the collaboration does not verify: %w", err)
	}
	p, err := c.VerifyRevocation(rev)
	if err != nil {
		return nil, err
	}
	if err := rev.CheckTime(b.now()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	key := ed25519.PublicKey(p.Card.SigningKey)
	held, err := b.heldKeys(ctx, c, key)
	if err != nil {
		return nil, err
	}
	if len(held) == 0 {
		return nil, fmt.Errorf("%w: this broker holds no dataset key of %q (%s) that collaboration %s names: a revocation is kept where the party's keys are", ErrNotFound, p.Name, p.Card.Fingerprint, c.ID)
	}
	statement, err := rev.Marshal()
	if err != nil {
		return nil, err
	}
	created, err := b.store.PutRevocation(ctx, &store.Revocation{Collaboration: c.ID, Signer: hex.EncodeToString(key), Party: rev.Party,
		RevokedAt: rev.RevokedAt, Statement: statement})
	if err != nil {
		return nil, err
	}
	b.log.InfoContext(ctx, "approval revocation accepted", "collaboration", c.ID, "party", p.Name, "fingerprint", p.Card.Fingerprint,
		"revoked_at", rev.RevokedAt, "manifest_hash", rev.ManifestHash, "resources", held, "new", created, "requester", requester,
		"signature_sha256", rev.Digest())
	return &RevocationResponse{Collaboration: c.ID, Party: p.Name, Fingerprint: p.Card.Fingerprint, RevokedAt: rev.RevokedAt, Resources: held, New: created}, nil
}

// heldKeys returns the dataset keys this broker holds, pinned to key, of
// the datasets that key's party owns in any version of c.
func (b *Broker) heldKeys(ctx context.Context, c *collab.Collaboration, key ed25519.PublicKey) ([]string, error) {
	var paths []string
	for _, m := range c.Versions {
		for _, d := range m.Datasets {
			if o := m.Party(d.Owner); o != nil && o.Card != nil && bytes.Equal(o.Card.SigningKey, key) && !slices.Contains(paths, d.Descriptor.KeyBroker.Resource) {
				paths = append(paths, d.Descriptor.KeyBroker.Resource)
			}
		}
	}
	var held []string
	for _, path := range paths {
		if store.ValidatePath(path) != nil {
			continue
		}
		r, found, err := b.resources.get(ctx, path)
		if err != nil {
			return nil, err
		}
		if !found || r.Metadata[MetaKind] != KindDatasetKey {
			continue
		}
		if pinned, _ := base64.StdEncoding.DecodeString(r.Metadata[MetaOwnerSigningKey]); bytes.Equal(pinned, key) {
			held = append(held, path)
		}
	}
	slices.Sort(held)
	return held, nil
}

// revocations returns the revocations this broker keeps of collaboration
// by the owner key, those that still verify under it.
func (b *Broker) revocations(ctx context.Context, collaboration string, owner ed25519.PublicKey) ([]*collab.Revocation, error) {
	stored, err := b.store.ListRevocations(ctx, collaboration, hex.EncodeToString(owner), maxRevocationsRead)
	if err != nil {
		return nil, fmt.Errorf("read revocations: %w", err)
	}
	var out []*collab.Revocation
	for _, s := range stored {
		r, err := collab.ParseRevocation(s.Statement)
		if err != nil || r.Collaboration != collaboration || r.VerifyKey(owner) != nil {
			b.log.WarnContext(ctx, "stored revocation ignored: it does not verify", "collaboration", collaboration, "digest", s.Digest, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func (b *Broker) handleRevocation(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, maxRevocationRequest)
	if err != nil {
		return err
	}
	var req RevocationRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	if len(req.Revocation) == 0 || len(req.Collaboration) == 0 {
		return fmt.Errorf("%w: give the revocation and the collaboration file", ErrBadRequest)
	}
	resp, err := b.AcceptRevocation(r.Context(), req.Revocation, req.Collaboration, web.ClientAddr(r))
	if err != nil {
		if !errors.Is(err, ErrBadRequest) {
			b.log.WarnContext(r.Context(), "approval revocation refused", "requester", web.ClientAddr(r), "reason", err)
		}
		return err
	}
	return web.WriteJSON(w, http.StatusOK, resp)
}
