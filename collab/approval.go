package collab

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/kura-cc/kura/party"
)

// approvalContext starts every signed approval message.
const approvalContext = "kura collab approval v1"

// Approval is a party's signature over one manifest version and its scope
// digest in that version (docs/spec/manifest.md §5).
type Approval struct {
	Party        string    `json:"party"`         // party name
	Version      int       `json:"version"`       // 1-based manifest version
	ManifestHash string    `json:"manifest_hash"` // hex SHA-256 of that version
	ScopeDigest  string    `json:"scope_digest"`  // hex, see ScopeDigest
	SignedAt     time.Time `json:"signed_at"`     // whole seconds, signed
	Signature    []byte    `json:"signature"`     // Ed25519 over Message
}

// Message returns the bytes a party signs for an approval of collaboration
// collabID:
//
//	"kura collab approval v1" || 0x00
//	u16(len(collabID)) || collabID || u16(len(party)) || party
//	u32(version) || manifest hash (32 bytes) || scope digest (32 bytes)
//	i64(signed_at, Unix seconds)
//
// with big-endian integers.
func (a *Approval) Message(collabID string) ([]byte, error) {
	mh, err1 := hex.DecodeString(a.ManifestHash)
	sd, err2 := hex.DecodeString(a.ScopeDigest)
	switch {
	case err1 != nil || len(mh) != 32:
		return nil, fmt.Errorf("%w: manifest_hash is not 64 hex characters", ErrBadApproval)
	case err2 != nil || len(sd) != 32:
		return nil, fmt.Errorf("%w: scope_digest is not 64 hex characters", ErrBadApproval)
	case len(collabID) > 0xffff || len(a.Party) > 0xffff || a.Version < 1 || a.Version > 0xffffffff:
		return nil, fmt.Errorf("%w: field out of range", ErrBadApproval)
	}
	var b bytes.Buffer
	b.WriteString(approvalContext)
	b.WriteByte(0)
	b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(collabID))))
	b.WriteString(collabID)
	b.Write(binary.BigEndian.AppendUint16(nil, uint16(len(a.Party))))
	b.WriteString(a.Party)
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(a.Version)))
	b.Write(mh)
	b.Write(sd)
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(a.SignedAt.Unix())))
	return b.Bytes(), nil
}

// Approve has the identity's party approve the current version as of at
// (truncated to the second), records the approval (replacing an earlier
// one by the party of the same version) and returns it. The identity's
// card must be the party's card in the manifest. An approval in the very
// second of a revocation by the party that the file holds is signed a
// second later: a revocation revokes approvals signed at or before it,
// and approving right after revoking restores.
func (c *Collaboration) Approve(id *party.Identity, at time.Time) (*Approval, error) {
	n := len(c.Versions)
	m := c.Current()
	p := m.Party(id.Name())
	if p == nil {
		return nil, fmt.Errorf("%w: %q is not a party of %s version %d", ErrBadApproval, id.Name(), c.ID, n)
	}
	if !bytes.Equal(p.Card.SigningKey, id.Card().SigningKey) {
		return nil, fmt.Errorf("%w: the manifest holds another card for %q (fingerprint %s, yours %s): refuse to approve until the manifest has your card", ErrBadApproval, p.Name, p.Card.Fingerprint, id.Card().Fingerprint)
	}
	scope, err := m.ScopeDigest(p.Name)
	if err != nil {
		return nil, err
	}
	at = at.UTC().Truncate(time.Second)
	if r := c.revokedUntil(nil, nil)[string(p.Card.SigningKey)]; r != nil && at.Equal(r.RevokedAt) {
		at = at.Add(time.Second)
	}
	a := &Approval{Party: p.Name, Version: n, ManifestHash: m.Hash(), ScopeDigest: scope, SignedAt: at}
	msg, err := a.Message(c.ID)
	if err != nil {
		return nil, err
	}
	a.Signature = id.Sign(msg)
	c.record(a)
	return a, nil
}

// AddApproval verifies an approval made elsewhere and records it,
// replacing an earlier one by the party of the same version.
func (c *Collaboration) AddApproval(a *Approval) error {
	if err := c.verifyApproval(a); err != nil {
		return err
	}
	if len(c.Approvals) >= MaxApprovals {
		return fmt.Errorf("%w: more than %d approvals", ErrMalformedCollaboration, MaxApprovals)
	}
	c.record(a)
	return nil
}

func (c *Collaboration) record(a *Approval) {
	c.Approvals = slices.DeleteFunc(c.Approvals, func(x *Approval) bool { return x.Party == a.Party && x.Version == a.Version })
	c.Approvals = append(c.Approvals, a)
}

// verifyApproval checks an approval against the version it names.
func (c *Collaboration) verifyApproval(a *Approval) error {
	m := c.Version(a.Version)
	if m == nil {
		return fmt.Errorf("%w: by %q: no version %d", ErrBadApproval, a.Party, a.Version)
	}
	p := m.Party(a.Party)
	if p == nil {
		return fmt.Errorf("%w: by %q: not a party of version %d", ErrBadApproval, a.Party, a.Version)
	}
	if a.ManifestHash != m.Hash() {
		return fmt.Errorf("%w: by %q: names manifest %s, version %d is %s", ErrBadApproval, a.Party, a.ManifestHash, a.Version, m.Hash())
	}
	scope, err := m.ScopeDigest(p.Name)
	if err != nil {
		return err
	}
	if a.ScopeDigest != scope {
		return fmt.Errorf("%w: by %q: scope digest %s, version %d gives %s", ErrBadApproval, a.Party, a.ScopeDigest, a.Version, scope)
	}
	if a.SignedAt.Nanosecond() != 0 {
		return fmt.Errorf("%w: by %q: signed_at has a fraction of a second", ErrBadApproval, a.Party)
	}
	msg, err := a.Message(c.ID)
	if err != nil {
		return err
	}
	if err := p.Card.Verify(msg, a.Signature); err != nil {
		return fmt.Errorf("%w: by %q of version %d: signature invalid under the party's card (%s): %w", ErrBadApproval, a.Party, a.Version, p.Card.Fingerprint, err)
	}
	return nil
}

// State is a party's approval state for the current version.
type State string

// Approval states.
const (
	Approved State = "approved" // a valid approval covers the current version
	Stale    State = "stale"    // the party approved, but its scope changed since
	Revoked  State = "revoked"  // an approval would cover it, but the party revoked it
	Missing  State = "missing"  // the party never validly approved
)

// PartyStatus is where a party stands on the current version.
type PartyStatus struct {
	Party string `json:"party"`
	// Required is true for data providers with datasets: key brokers
	// release their keys only with their approval.
	Required bool  `json:"required"`
	State    State `json:"state"`
	// Via is the version whose approval covers the current one (Approved),
	// the latest version the party validly approved (Stale), or the
	// latest version whose approval would cover it but was revoked
	// (Revoked).
	Via int `json:"via,omitempty"`
	// StaleSince and Changes say which version changed the party's scope
	// and what changed (Stale).
	StaleSince int      `json:"stale_since,omitempty"`
	Changes    []string `json:"changes,omitempty"`
	// RevokedAt and Reason are the party's latest revocation's time and
	// reason (Revoked).
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	// Invalid counts the party's approvals that do not verify.
	Invalid int `json:"invalid,omitempty"`
}

// Status reports, for each party of the current version, whether a valid
// approval covers it: P's approval of version j counts for version n iff
// P's scope digest is the same in both, and P did not revoke it (a valid
// revocation in the file, by the same signing key, dated at or after the
// approval's signed_at).
func (c *Collaboration) Status() []PartyStatus {
	m := c.Current()
	revoked := c.revokedUntil(nil, nil)
	out := make([]PartyStatus, 0, len(m.Parties))
	for _, p := range m.Parties {
		out = append(out, c.status(p.Name, revoked))
	}
	return out
}

// status is where the named party stands; revoked holds, by signing key,
// the latest revocation that counts.
func (c *Collaboration) status(name string, revoked map[string]*Revocation) PartyStatus {
	n := len(c.Versions)
	m := c.Current()
	st := PartyStatus{Party: name, State: Missing}
	for _, d := range m.Datasets {
		if d.Owner == name {
			st.Required = true
		}
	}
	cur, err := m.scope(name)
	if err != nil {
		return st
	}
	var (
		revokedVia int
		revocation *Revocation
	)
	for _, a := range c.Approvals {
		if a.Party != name {
			continue
		}
		if c.verifyApproval(a) != nil {
			st.Invalid++
			continue
		}
		if a.ScopeDigest == cur.digest {
			key := c.Version(a.Version).Party(name).Card.SigningKey
			if r := revoked[string(key)]; r != nil && !a.SignedAt.After(r.RevokedAt) {
				revokedVia, revocation = max(revokedVia, a.Version), r
				continue
			}
			if st.State != Approved || a.Version > st.Via {
				st.State, st.Via, st.StaleSince, st.Changes = Approved, a.Version, 0, nil
			}
			continue
		}
		if st.State == Approved || a.Version <= st.Via {
			continue
		}
		st.State, st.Via = Stale, a.Version
		old, _ := c.Version(a.Version).scope(name)
		for k := a.Version + 1; k <= n; k++ {
			sk, err := c.Version(k).scope(name)
			if err == nil && sk.digest != old.digest {
				st.StaleSince, st.Changes = k, diffScopes(old, sk)
				break
			}
		}
	}
	if st.State != Approved && revokedVia > 0 {
		at := revocation.RevokedAt
		st.State, st.Via, st.StaleSince, st.Changes = Revoked, revokedVia, 0, nil
		st.RevokedAt, st.Reason = &at, revocation.Reason
	}
	return st
}

// CheckApproved is what a key broker asks before releasing a dataset key
// to a run of analysisID: the current version has the analysis; the party
// whose card has ownerKey (pinned by the broker, independently of the
// manifest) is a party of it and owns a dataset the analysis reads; and a
// valid approval by that party covers the current version. A manifest that
// substitutes another card for the owner fails. Errors wrap
// ErrNotApproved (a *NotApprovedError when the party is known),
// ErrBadApproval or ErrBrokenChain, and name the owner.
//
// An approval the owner revoked does not count (ErrRevoked): the file's
// valid revocations count, and so do those in revoked that name this
// collaboration and verify under ownerKey — what a key broker was given
// and stored itself, whatever file a run presents.
func (c *Collaboration) CheckApproved(ownerKey ed25519.PublicKey, analysisID string, revoked ...*Revocation) error {
	if err := c.verifyChain(); err != nil {
		return err
	}
	n := len(c.Versions)
	m := c.Current()
	a := m.Analysis(analysisID)
	if a == nil {
		return fmt.Errorf("%w: analysis %q is not in %s version %d", ErrNotApproved, analysisID, c.ID, n)
	}
	p := m.partyWithKey(ownerKey)
	if p == nil {
		return fmt.Errorf("%w: no party of %s version %d has the owner's signing key: the owner's card was replaced, or the owner is not a party", ErrNotApproved, c.ID, n)
	}
	reads := false
	for _, id := range ReadsOf(a) {
		if d := m.Dataset(id); d != nil && d.Owner == p.Name {
			reads = true
		}
	}
	if !reads {
		return fmt.Errorf("%w: analysis %q reads no dataset of %q", ErrNotApproved, analysisID, p.Name)
	}
	return c.approvedBy(p.Name, c.revokedUntil(ownerKey, revoked))
}

// CheckPartyApproved is what a party asks before it relies on the current
// version — a receiver trusting its verifier list: the party whose card
// has key is a party of the current version, and a valid approval by it
// covers that version (its scope, which includes the verifier list, is
// the one it signed). Errors are CheckApproved's.
func (c *Collaboration) CheckPartyApproved(key ed25519.PublicKey) error {
	if err := c.verifyChain(); err != nil {
		return err
	}
	p := c.Current().partyWithKey(key)
	if p == nil {
		return fmt.Errorf("%w: no party of %s version %d has this signing key", ErrNotApproved, c.ID, len(c.Versions))
	}
	return c.approvedBy(p.Name, c.revokedUntil(nil, nil))
}

// partyWithKey returns the party whose card has the signing key, or nil.
func (m *Manifest) partyWithKey(key ed25519.PublicKey) *Party {
	for i := range m.Parties {
		if m.Parties[i].Card != nil && bytes.Equal(m.Parties[i].Card.SigningKey, key) {
			return &m.Parties[i]
		}
	}
	return nil
}

// approvedBy says why the named party's approvals do not cover the
// current version, or nil when one does.
func (c *Collaboration) approvedBy(name string, revoked map[string]*Revocation) error {
	st := c.status(name, revoked)
	e := &NotApprovedError{Party: name, Version: len(c.Versions), Err: ErrNotApproved}
	switch st.State {
	case Approved:
		return nil
	case Revoked:
		e.Approved, e.RevokedAt = st.Via, *st.RevokedAt
		e.Err = fmt.Errorf("%w: %w", ErrRevoked, ErrNotApproved)
	case Stale:
		e.Approved, e.StaleSince, e.Changes = st.Via, st.StaleSince, st.Changes
	default:
		if st.Invalid > 0 {
			e.Err = fmt.Errorf("%w: %d approval(s) by %q do not verify (signature invalid or not for this manifest)", ErrBadApproval, st.Invalid, name)
		}
	}
	return e
}

// scope is what of a manifest touches one party's data: the party's
// entry, its datasets and every dataset read with them, the analyses that
// read its datasets (with their effective receivers and reads), the
// worker reference values, the cards of those analyses' receivers and the
// verifier list.
type scope struct {
	Format        int                    `json:"kura_scope"`
	Collaboration string                 `json:"collaboration"`
	Party         Party                  `json:"party"`
	Datasets      map[string]Dataset     `json:"datasets"`
	Analyses      map[string]Analysis    `json:"analyses"`
	Worker        Worker                 `json:"worker"`
	Receivers     map[string]*party.Card `json:"receivers"`
	// Verifiers is the manifest's verifier list, in every party's scope:
	// it decides whose attestation every result rests on. Absent in the
	// legacy format, so those scope digests are unchanged.
	Verifiers []Verifier `json:"verifiers,omitempty"`
	// Expires is the manifest's approval expiry, in every party's scope.
	Expires string `json:"expires,omitempty"`

	digest string
}

// ScopeDigest returns the hex SHA-256 of the canonical JSON of the party's
// scope in this manifest (docs/spec/manifest.md §5).
func (m *Manifest) ScopeDigest(partyName string) (string, error) {
	s, err := m.scope(partyName)
	if err != nil {
		return "", err
	}
	return s.digest, nil
}

func (m *Manifest) scope(name string) (*scope, error) {
	p := m.Party(name)
	if p == nil {
		return nil, fmt.Errorf("%w: no party %q", ErrInvalidManifest, name)
	}
	s := &scope{Format: 1, Collaboration: m.ID, Party: *p, Datasets: map[string]Dataset{}, Analyses: map[string]Analysis{}, Worker: m.Worker, Receivers: map[string]*party.Card{}, Verifiers: m.Verifiers, Expires: m.Expires}
	own := map[string]bool{}
	for _, d := range m.Datasets {
		if d.Owner == name {
			own[d.ID] = true
			s.Datasets[d.ID] = d
		}
	}
	for _, a := range m.Analyses {
		reads := ReadsOf(&a)
		if !slices.ContainsFunc(reads, func(id string) bool { return own[id] }) {
			continue
		}
		a.Reads = reads
		a.Receivers = m.ReceiversOf(&a)
		s.Analyses[a.ID] = a
		for _, id := range reads {
			if d := m.Dataset(id); d != nil {
				s.Datasets[id] = *d
			}
		}
		for _, r := range a.Receivers {
			if rp := m.Party(r); rp != nil {
				s.Receivers[r] = rp.Card
			}
		}
	}
	c, err := canonicalOf(s)
	if err != nil {
		return nil, fmt.Errorf("%w: scope of %q: %w", ErrInvalidManifest, name, err)
	}
	s.digest = sha256Hex(c)
	return s, nil
}

// PartyChange is what a manifest version changed for one party: an
// approval of the version before no longer covers it, so the party must
// approve again (or, new to the collaboration, for the first time).
type PartyChange struct {
	Party string `json:"party"`
	// New is true for a party that was not in the version before.
	New bool `json:"new,omitempty"`
	// Changes names what changed in the party's scope, as Status does.
	Changes []string `json:"changes,omitempty"`
}

// VersionChanges returns, for version v (2 to len(Versions)), each party
// of v whose scope differs from its scope in version v-1, with what
// differs; a party not listed keeps its approval of v-1 for v.
func (c *Collaboration) VersionChanges(v int) ([]PartyChange, error) {
	if v < 2 || v > len(c.Versions) {
		return nil, fmt.Errorf("%w: no version %d after a first (the collaboration has %d)", ErrInvalidManifest, v, len(c.Versions))
	}
	old, cur := c.Versions[v-2], c.Versions[v-1]
	var out []PartyChange
	for _, p := range cur.Parties {
		ns, err := cur.scope(p.Name)
		if err != nil {
			return nil, err
		}
		if old.Party(p.Name) == nil {
			out = append(out, PartyChange{Party: p.Name, New: true})
			continue
		}
		os, err := old.scope(p.Name)
		if err != nil {
			return nil, err
		}
		if os.digest != ns.digest {
			out = append(out, PartyChange{Party: p.Name, Changes: diffScopes(os, ns)})
		}
	}
	return out, nil
}

// diffScopes names the parts of a scope that differ.
func diffScopes(a, b *scope) []string {
	var out []string
	same := func(x, y any) bool {
		cx, err1 := canonicalOf(x)
		cy, err2 := canonicalOf(y)
		return err1 == nil && err2 == nil && bytes.Equal(cx, cy)
	}
	if a.Collaboration != b.Collaboration {
		out = append(out, "the collaboration id")
	}
	if !same(a.Party, b.Party) {
		out = append(out, "the party's own entry (card or roles)")
	}
	out = append(out, diffMap("dataset", a.Datasets, b.Datasets, same)...)
	out = append(out, diffMap("analysis", a.Analyses, b.Analyses, same)...)
	if !same(a.Worker, b.Worker) {
		out = append(out, "worker reference values")
	}
	out = append(out, diffMap("receiver card", a.Receivers, b.Receivers, same)...)
	if !same(a.Verifiers, b.Verifiers) {
		out = append(out, "the verifier list")
	}
	if a.Expires != b.Expires {
		out = append(out, "the approval expiry")
	}
	return out
}

func diffMap[V any](kind string, a, b map[string]V, same func(x, y any) bool) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []string
	for _, k := range sorted {
		x, inA := a[k]
		y, inB := b[k]
		switch {
		case !inA:
			out = append(out, fmt.Sprintf("%s %q (added)", kind, k))
		case !inB:
			out = append(out, fmt.Sprintf("%s %q (removed)", kind, k))
		case !same(x, y):
			out = append(out, fmt.Sprintf("%s %q", kind, k))
		}
	}
	return out
}
