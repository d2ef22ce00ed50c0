package collab

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Canonical returns the manifest's canonical form: the RFC 8785 (JCS)
// canonical JSON of its JSON encoding (docs/spec/manifest.md §3).
func (m *Manifest) Canonical() ([]byte, error) {
	c, err := canonicalOf(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidManifest, err)
	}
	return c, nil
}

// Hash returns the lowercase hex SHA-256 of the manifest's canonical form:
// the value parties sign and workers bind into attestation. It returns ""
// for a manifest that has no JSON encoding (a filter value that is not a
// JSON value), which Validate reports.
func (m *Manifest) Hash() string {
	c, err := m.Canonical()
	if err != nil {
		return ""
	}
	return sha256Hex(c)
}

// AnalysisHash returns the lowercase hex SHA-256 of the canonical JSON of
// the analysis id as stored in the manifest. Custom SQL is hashed
// verbatim: a change of white space changes the hash.
func (m *Manifest) AnalysisHash(id string) (string, error) {
	a := m.Analysis(id)
	if a == nil {
		return "", fmt.Errorf("%w: no analysis %q", ErrInvalidManifest, id)
	}
	c, err := canonicalOf(a)
	if err != nil {
		return "", fmt.Errorf("%w: analysis %q: %w", ErrInvalidManifest, id, err)
	}
	return sha256Hex(c), nil
}

// DisplayHash formats a hex hash as shown to people: "sha256:<hex>".
func DisplayHash(h string) string { return "sha256:" + h }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Party returns the party named name, or nil.
func (m *Manifest) Party(name string) *Party {
	for i := range m.Parties {
		if m.Parties[i].Name == name {
			return &m.Parties[i]
		}
	}
	return nil
}

// Dataset returns the dataset with the id, or nil.
func (m *Manifest) Dataset(id string) *Dataset {
	for i := range m.Datasets {
		if m.Datasets[i].ID == id {
			return &m.Datasets[i]
		}
	}
	return nil
}

// Analysis returns the analysis with the id, or nil.
func (m *Manifest) Analysis(id string) *Analysis {
	for i := range m.Analyses {
		if m.Analyses[i].ID == id {
			return &m.Analyses[i]
		}
	}
	return nil
}

// ReceiversOf returns the parties that receive an analysis's results: its
// own Receivers, or the manifest's when it names none.
func (m *Manifest) ReceiversOf(a *Analysis) []string {
	if len(a.Receivers) > 0 {
		return a.Receivers
	}
	return m.Receivers
}

// ReadsOf returns the datasets an analysis reads: Reads when given, else,
// for an aggregate, From followed by each joined dataset.
func ReadsOf(a *Analysis) []string {
	if len(a.Reads) > 0 || a.Kind != KindAggregate || a.Aggregate == nil {
		return a.Reads
	}
	return a.Aggregate.derivedReads()
}

func (g *Aggregate) derivedReads() []string {
	r := []string{g.From}
	for _, j := range g.Joins {
		r = append(r, j.Dataset)
	}
	return r
}

// HasRole reports whether the party has the role.
func (p *Party) HasRole(r Role) bool {
	for _, x := range p.Roles {
		if x == r {
			return true
		}
	}
	return false
}
