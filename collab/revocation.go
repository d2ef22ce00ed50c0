package collab

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/party"
)

// revocationContext starts every signed revocation message.
const revocationContext = "kura collab revocation v1"

// Limits on revocations.
const (
	// MaxRevocationSize bounds an encoded revocation.
	MaxRevocationSize = 4 << 10
	// MaxReasonSize bounds a revocation's reason, in bytes.
	MaxReasonSize = 1024
	// MaxRevocations bounds the revocations a collaboration file holds.
	MaxRevocations = 10000
	// MaxRevocationSkew is how far in the future of a verifier's clock a
	// revocation may be dated (CheckTime).
	MaxRevocationSkew = 5 * time.Minute
)

// Revocation errors.
var (
	// ErrMalformedRevocation means a revocation does not parse: oversized,
	// truncated, unknown or missing fields, a reason that is not text, a
	// time with a fraction of a second or too far in the future.
	ErrMalformedRevocation = fault.New(ErrCollab, fault.Malformed, "collab: malformed revocation")
	// ErrBadRevocation means a revocation does not verify: its signature
	// is not the named party's, or it names another collaboration, or a
	// manifest version or party the collaboration does not have.
	ErrBadRevocation = fault.New(ErrCollab, fault.BadSignature, "collab: bad revocation")
	// ErrRevoked means the party withdrew its approval: every approval of
	// its that would cover the current version was signed at or before
	// one of its revocations (403 or 409 "approval-revoked"). A
	// *NotApprovedError carrying it names the party and wraps
	// ErrNotApproved too.
	ErrRevoked = fault.NewCode(ErrCollab, fault.Denied, "approval-revoked", "collab: approval revoked")
)

// Revocation is a party's signed withdrawal of its approval of a
// collaboration (docs/spec/manifest.md §5.4): it revokes every approval
// by the party signed at or before RevokedAt; an approval signed later
// counts again.
type Revocation struct {
	Collaboration string    `json:"collaboration"`    // collaboration id
	Party         string    `json:"party"`            // the party's card fingerprint (64 hex)
	ManifestHash  string    `json:"manifest_hash"`    // hex SHA-256 of the version current when revoking
	RevokedAt     time.Time `json:"revoked_at"`       // whole seconds, signed
	Reason        string    `json:"reason,omitempty"` // optional, at most MaxReasonSize bytes
	Signature     []byte    `json:"signature"`        // Ed25519 over Message
}

// Message returns the bytes a party signs for a revocation:
//
//	"kura collab revocation v1" || 0x00
//	u16(len(collaboration)) || collaboration
//	party fingerprint (32 bytes) || manifest hash (32 bytes)
//	i64(revoked_at, Unix seconds)
//	u16(len(reason)) || reason
//
// with big-endian integers. It fails with ErrMalformedRevocation for a
// field out of its range.
func (r *Revocation) Message() ([]byte, error) {
	fp, err1 := hex.DecodeString(r.Party)
	mh, err2 := hex.DecodeString(r.ManifestHash)
	switch {
	case r.Collaboration == "" || len(r.Collaboration) > 0xffff:
		return nil, fmt.Errorf("%w: no collaboration id", ErrMalformedRevocation)
	case err1 != nil || len(fp) != 32 || r.Party != strings.ToLower(r.Party):
		return nil, fmt.Errorf("%w: party is not a card fingerprint (64 lowercase hex characters)", ErrMalformedRevocation)
	case err2 != nil || len(mh) != 32 || r.ManifestHash != strings.ToLower(r.ManifestHash):
		return nil, fmt.Errorf("%w: manifest_hash is not 64 lowercase hex characters", ErrMalformedRevocation)
	case r.RevokedAt.IsZero() || r.RevokedAt.Nanosecond() != 0:
		return nil, fmt.Errorf("%w: revoked_at must be a time in whole seconds", ErrMalformedRevocation)
	}
	if err := checkReason(r.Reason); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(revocationContext)
	b.WriteByte(0)
	b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r.Collaboration))))
	b.WriteString(r.Collaboration)
	b.Write(fp)
	b.Write(mh)
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(r.RevokedAt.Unix())))
	b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r.Reason))))
	b.WriteString(r.Reason)
	return b.Bytes(), nil
}

// checkReason accepts text of at most MaxReasonSize bytes: valid UTF-8
// without control characters.
func checkReason(s string) error {
	if len(s) > MaxReasonSize {
		return fmt.Errorf("%w: reason is %d bytes, limit %d", ErrMalformedRevocation, len(s), MaxReasonSize)
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%w: reason is not UTF-8 text without control characters", ErrMalformedRevocation)
	}
	return nil
}

// Marshal returns the revocation as JSON, the form ParseRevocation reads
// and the form every kura server stores.
func (r *Revocation) Marshal() ([]byte, error) {
	if _, err := r.Message(); err != nil {
		return nil, err
	}
	c := *r
	c.RevokedAt = r.RevokedAt.UTC()
	return json.Marshal(&c)
}

// Digest returns the hex SHA-256 of the signature: what the transparency
// log records as a revocation's subject, as it does for approvals.
func (r *Revocation) Digest() string {
	sum := sha256.Sum256(r.Signature)
	return hex.EncodeToString(sum[:])
}

// ParseRevocation decodes a revocation strictly (at most
// MaxRevocationSize bytes, no unknown or missing field, nothing after it)
// and checks its fields. It does not verify the signature: see
// Collaboration.VerifyRevocation and VerifyKey.
func ParseRevocation(data []byte) (*Revocation, error) {
	if len(data) > MaxRevocationSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedRevocation, len(data), MaxRevocationSize)
	}
	var r Revocation
	if err := decodeStrict(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedRevocation, err)
	}
	if _, err := r.Message(); err != nil {
		return nil, err
	}
	if len(r.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformedRevocation, len(r.Signature), ed25519.SignatureSize)
	}
	r.RevokedAt = r.RevokedAt.UTC()
	return &r, nil
}

// CheckTime refuses a revocation dated more than MaxRevocationSkew after
// now: it would revoke approvals not yet signed, and lock the party out
// of approving again until then.
func (r *Revocation) CheckTime(now time.Time) error {
	if r.RevokedAt.After(now.Add(MaxRevocationSkew)) {
		return fmt.Errorf("%w: revoked_at %s is in the future of this clock (%s)", ErrMalformedRevocation, r.RevokedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// VerifyKey checks the signature under key, a signing key pinned
// independently of any manifest (a key broker's owner key). It does not
// say which collaboration versions the revocation names exist.
func (r *Revocation) VerifyKey(key ed25519.PublicKey) error {
	msg, err := r.Message()
	if err != nil {
		return err
	}
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, msg, r.Signature) {
		return fmt.Errorf("%w: not signed by this key", ErrBadRevocation)
	}
	return nil
}

// Revoke has the identity's party withdraw its approval as of at
// (truncated to the second), with an optional reason, records the
// revocation in the collaboration and returns it. The identity's card must
// be the party's card in the current version.
func (c *Collaboration) Revoke(id *party.Identity, at time.Time, reason string) (*Revocation, error) {
	n := len(c.Versions)
	m := c.Current()
	p := m.Party(id.Name())
	if p == nil {
		return nil, fmt.Errorf("%w: %q is not a party of %s version %d", ErrBadRevocation, id.Name(), c.ID, n)
	}
	if !bytes.Equal(p.Card.SigningKey, id.Card().SigningKey) {
		return nil, fmt.Errorf("%w: the manifest holds another card for %q (fingerprint %s, yours %s)", ErrBadRevocation, p.Name, p.Card.Fingerprint, id.Card().Fingerprint)
	}
	if len(c.Revocations) >= MaxRevocations {
		return nil, fmt.Errorf("%w: more than %d revocations", ErrMalformedCollaboration, MaxRevocations)
	}
	r := &Revocation{Collaboration: c.ID, Party: p.Card.Fingerprint, ManifestHash: m.Hash(), RevokedAt: at.UTC().Truncate(time.Second), Reason: reason}
	msg, err := r.Message()
	if err != nil {
		return nil, err
	}
	r.Signature = id.Sign(msg)
	c.Revocations = append(c.Revocations, r)
	return r, nil
}

// VerifyRevocation checks a revocation against the collaboration: it
// names this collaboration and one of its manifest versions, a party of
// that version by its card's fingerprint, and its signature verifies under
// that card. It returns the party, as that version has it. It does not
// check the hash chain: call Verify first.
func (c *Collaboration) VerifyRevocation(r *Revocation) (*Party, error) {
	msg, err := r.Message()
	if err != nil {
		return nil, err
	}
	if r.Collaboration != c.ID {
		return nil, fmt.Errorf("%w: it revokes approvals of collaboration %q, not %q", ErrBadRevocation, r.Collaboration, c.ID)
	}
	n := slices.IndexFunc(c.Versions, func(m *Manifest) bool { return m.Hash() == r.ManifestHash })
	if n < 0 {
		return nil, fmt.Errorf("%w: manifest %s is no version of collaboration %s", ErrBadRevocation, DisplayHash(r.ManifestHash), c.ID)
	}
	m := c.Versions[n]
	i := slices.IndexFunc(m.Parties, func(p Party) bool { return p.Card != nil && p.Card.Fingerprint == r.Party })
	if i < 0 {
		return nil, fmt.Errorf("%w: no party of %s version %d has the card %s", ErrBadRevocation, c.ID, n+1, r.Party)
	}
	p := &m.Parties[i]
	if err := p.Card.Verify(msg, r.Signature); err != nil {
		return nil, fmt.Errorf("%w: by %q: signature invalid under the party's card (%s): %w", ErrBadRevocation, p.Name, p.Card.Fingerprint, err)
	}
	return p, nil
}

// AddRevocation verifies a revocation made elsewhere and records it,
// unless the collaboration holds it already (the same signature). It
// reports whether it was new.
func (c *Collaboration) AddRevocation(r *Revocation) (bool, error) {
	if _, err := c.VerifyRevocation(r); err != nil {
		return false, err
	}
	if slices.ContainsFunc(c.Revocations, func(x *Revocation) bool { return bytes.Equal(x.Signature, r.Signature) }) {
		return false, nil
	}
	if len(c.Revocations) >= MaxRevocations {
		return false, fmt.Errorf("%w: more than %d revocations", ErrMalformedCollaboration, MaxRevocations)
	}
	c.Revocations = append(c.Revocations, r)
	return true, nil
}

// revokedUntil returns, by Ed25519 signing key, the latest time the
// collaboration's valid revocations — and those of extra that name it and
// verify under ownerKey — revoke approvals up to, with that revocation's
// reason.
func (c *Collaboration) revokedUntil(ownerKey ed25519.PublicKey, extra []*Revocation) map[string]*Revocation {
	out := map[string]*Revocation{}
	note := func(key []byte, r *Revocation) {
		if prev := out[string(key)]; prev == nil || r.RevokedAt.After(prev.RevokedAt) {
			out[string(key)] = r
		}
	}
	for _, r := range c.Revocations {
		if p, err := c.VerifyRevocation(r); err == nil {
			note(p.Card.SigningKey, r)
		}
	}
	for _, r := range extra {
		if r != nil && r.Collaboration == c.ID && r.VerifyKey(ownerKey) == nil {
			note(ownerKey, r)
		}
	}
	return out
}
