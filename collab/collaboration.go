package collab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// CollaborationFormat is the collaboration file format this package reads
// and writes.
const CollaborationFormat = 1

// Limits on collaboration files.
const (
	MaxCollaborationSize = 4 << 20 // bytes
	MaxVersions          = 1000
	MaxApprovals         = 10000
)

// PushSigningContext names the coordinator's API in the request signature
// of a push (internal/httpsig): a party's PUT of a collaboration file, from
// the CLI or the web console.
const PushSigningContext = "kura-collab-v1"

// Collaboration is a collaboration's history: every manifest version, each
// chained to the one before by its Previous hash, the parties' approvals
// and their revocations. It is stored as one JSON file
// (docs/spec/manifest.md §6).
type Collaboration struct {
	Format      int           `json:"kura_collaboration"` // CollaborationFormat
	ID          string        `json:"id"`                 // the manifests' id
	Versions    []*Manifest   `json:"versions"`           // version n is Versions[n-1]
	Approvals   []*Approval   `json:"approvals,omitempty"`
	Revocations []*Revocation `json:"revocations,omitempty"`
}

// New starts a collaboration whose version 1 is m. m must be valid, in
// FormatVersion, and have no Previous hash.
func New(m *Manifest) (*Collaboration, error) {
	m.complete()
	if err := m.checkNew(); err != nil {
		return nil, err
	}
	if err := m.validate(true); err != nil {
		return nil, err
	}
	if m.Previous != "" {
		return nil, fmt.Errorf("%w: the first version has no previous hash", ErrBrokenChain)
	}
	return &Collaboration{Format: CollaborationFormat, ID: m.ID, Versions: []*Manifest{m}}, nil
}

// Current returns the latest manifest version.
func (c *Collaboration) Current() *Manifest { return c.Versions[len(c.Versions)-1] }

// Version returns version n (1-based), or nil.
func (c *Collaboration) Version(n int) *Manifest {
	if n < 1 || n > len(c.Versions) {
		return nil
	}
	return c.Versions[n-1]
}

// AddVersion appends m as the next version. m must be valid, in
// FormatVersion (an old collaboration moves to it here), have the
// collaboration's id and name the current version's hash as Previous
// (ErrBrokenChain otherwise), and differ from it. Approvals stay; whether
// each still counts follows from the parties' scopes (see Status).
func (c *Collaboration) AddVersion(m *Manifest) error {
	m.complete()
	if err := m.checkNew(); err != nil {
		return err
	}
	if err := m.validate(true); err != nil {
		return err
	}
	cur := c.Current()
	if m.ID != c.ID {
		return fmt.Errorf("%w: the new version's id is %q, the collaboration's is %q", ErrBrokenChain, m.ID, c.ID)
	}
	if m.Previous != cur.Hash() {
		return fmt.Errorf("%w: the new version's previous hash is %q, version %d is %s", ErrBrokenChain, m.Previous, len(c.Versions), cur.Hash())
	}
	if len(c.Versions) >= MaxVersions {
		return fmt.Errorf("%w: more than %d versions", ErrMalformedCollaboration, MaxVersions)
	}
	same := *m
	same.Previous = cur.Previous
	if same.Hash() == cur.Hash() {
		return fmt.Errorf("%w: nothing changed since version %d", ErrInvalidManifest, len(c.Versions))
	}
	c.Versions = append(c.Versions, m)
	return nil
}

// Marshal returns the collaboration file: indented JSON and a final newline.
func (c *Collaboration) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// collabFile is a collaboration file with its manifests still raw, so
// that their normal form can be checked.
type collabFile struct {
	Format      int               `json:"kura_collaboration"`
	ID          string            `json:"id"`
	Versions    []json.RawMessage `json:"versions"`
	Approvals   []*Approval       `json:"approvals"`
	Revocations []*Revocation     `json:"revocations"`
}

// ParseCollaboration parses a collaboration file strictly and checks that
// every version is a valid manifest in normal form (its JSON is, up to
// canonicalisation, what its encoding would be, so that its hash has one
// meaning). It does not check the chain or the approvals: call Verify.
func ParseCollaboration(data []byte) (*Collaboration, error) {
	if len(data) > MaxCollaborationSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedCollaboration, len(data), MaxCollaborationSize)
	}
	var f collabFile
	if err := decodeStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCollaboration, err)
	}
	switch {
	case f.Format != CollaborationFormat:
		return nil, fmt.Errorf("%w: kura_collaboration %d, want %d", ErrMalformedCollaboration, f.Format, CollaborationFormat)
	case len(f.Versions) == 0:
		return nil, fmt.Errorf("%w: no versions", ErrMalformedCollaboration)
	case len(f.Versions) > MaxVersions:
		return nil, fmt.Errorf("%w: %d versions, limit %d", ErrMalformedCollaboration, len(f.Versions), MaxVersions)
	case len(f.Approvals) > MaxApprovals:
		return nil, fmt.Errorf("%w: %d approvals, limit %d", ErrMalformedCollaboration, len(f.Approvals), MaxApprovals)
	case len(f.Revocations) > MaxRevocations:
		return nil, fmt.Errorf("%w: %d revocations, limit %d", ErrMalformedCollaboration, len(f.Revocations), MaxRevocations)
	}
	c := &Collaboration{Format: f.Format, ID: f.ID}
	for i, raw := range f.Versions {
		var m Manifest
		if err := decodeStrict(raw, &m); err != nil {
			return nil, fmt.Errorf("%w: versions[%d]: %w", ErrMalformedCollaboration, i, err)
		}
		got, err := Canonicalize(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: versions[%d]: %w", ErrMalformedCollaboration, i, err)
		}
		want, err := m.Canonical()
		if err != nil || !bytes.Equal(got, want) {
			return nil, fmt.Errorf("%w: versions[%d]: not in normal form (null or empty values, or values that do not re-encode identically)", ErrMalformedCollaboration, i)
		}
		if err := m.validate(true); err != nil {
			return nil, fmt.Errorf("%w: versions[%d]: %w", ErrMalformedCollaboration, i, err)
		}
		c.Versions = append(c.Versions, &m)
	}
	for i, a := range f.Approvals {
		if a == nil {
			return nil, fmt.Errorf("%w: approvals[%d]: null", ErrMalformedCollaboration, i)
		}
	}
	c.Approvals = f.Approvals
	for i, r := range f.Revocations {
		if r == nil {
			return nil, fmt.Errorf("%w: revocations[%d]: null", ErrMalformedCollaboration, i)
		}
		if _, err := r.Message(); err != nil {
			return nil, fmt.Errorf("%w: revocations[%d]: %w", ErrMalformedCollaboration, i, err)
		}
		r.RevokedAt = r.RevokedAt.UTC()
	}
	c.Revocations = f.Revocations
	return c, nil
}

// Verify checks the whole collaboration as an offline verifier would: the
// format, that every version has the collaboration's id and chains to the
// one before (ErrBrokenChain), and every approval: its version exists, it
// names that version's hash and the party's scope digest, and its
// signature verifies under the party's card in that version
// (ErrBadApproval), and every revocation: it names a version of this
// collaboration and a party of it, whose card its signature verifies
// under, and appears once (ErrBadRevocation). It does not say who approved
// what: see Status and CheckApproved.
func (c *Collaboration) Verify() error {
	if err := c.verifyChain(); err != nil {
		return err
	}
	var errs []error
	seen := map[[2]any]bool{}
	for i, a := range c.Approvals {
		if err := c.verifyApproval(a); err != nil {
			errs = append(errs, fmt.Errorf("approvals[%d]: %w", i, err))
			continue
		}
		k := [2]any{a.Party, a.Version}
		if seen[k] {
			errs = append(errs, fmt.Errorf("%w: approvals[%d]: a second approval by %q of version %d", ErrBadApproval, i, a.Party, a.Version))
		}
		seen[k] = true
	}
	sigs := map[string]bool{}
	for i, r := range c.Revocations {
		if _, err := c.VerifyRevocation(r); err != nil {
			errs = append(errs, fmt.Errorf("revocations[%d]: %w", i, err))
			continue
		}
		if sigs[string(r.Signature)] {
			errs = append(errs, fmt.Errorf("%w: revocations[%d]: a second copy of the same revocation", ErrBadRevocation, i))
		}
		sigs[string(r.Signature)] = true
	}
	return errors.Join(errs...)
}

func (c *Collaboration) verifyChain() error {
	if c.Format != CollaborationFormat {
		return fmt.Errorf("%w: format %d, want %d", ErrMalformedCollaboration, c.Format, CollaborationFormat)
	}
	if len(c.Versions) == 0 {
		return fmt.Errorf("%w: no versions", ErrMalformedCollaboration)
	}
	prev := ""
	for i, m := range c.Versions {
		if m.ID != c.ID {
			return fmt.Errorf("%w: version %d has id %q, the collaboration %q", ErrBrokenChain, i+1, m.ID, c.ID)
		}
		if m.Previous != prev {
			return fmt.Errorf("%w: version %d names previous %q, want %q", ErrBrokenChain, i+1, m.Previous, prev)
		}
		prev = m.Hash()
		if prev == "" {
			return fmt.Errorf("%w: version %d has no canonical form", ErrInvalidManifest, i+1)
		}
	}
	return nil
}
