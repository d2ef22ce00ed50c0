package trust

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kura-cc/kura/party"
)

// BuildType is the type of a signed build approval.
const BuildType = "kura-inference-build/v1"

// MaxBuildSize bounds an encoded build approval.
const MaxBuildSize = 16 << 10

// buildContext prefixes what an approver signs.
const buildContext = "kura inference build approval v1\n"

// Build is a party's signed approval of an inference gateway build
// (docs/spec/inference.md §7): the launch measurement the build has on a
// TEE, its version and where its source is. The approver's card and
// signature travel with it, so anyone can check who approved it; the
// transparency log records it (auditlog kind inference_build), and clients
// that trust the approver require the gateway's measurement to be logged
// so.
type Build struct {
	Type        string    `json:"type"`
	TEE         string    `json:"tee"`
	Measurement string    `json:"measurement"` // lower-case hex
	Version     string    `json:"version"`
	Source      string    `json:"source"` // e.g. a repository URL at a commit
	ApprovedAt  time.Time `json:"approved_at"`
	// Approver is the fingerprint of the approver's party card, which
	// Card holds; Signature is its Ed25519 signature over SigningBytes.
	Approver  string          `json:"approver"`
	Card      json.RawMessage `json:"card"`
	Signature []byte          `json:"signature"`
}

// SigningBytes returns what the approver signs: a context string, then
// the approval's compact JSON without its signature.
func (b *Build) SigningBytes() ([]byte, error) {
	c := *b
	c.Signature = nil
	j, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append([]byte(buildContext), j...), nil
}

// Sign makes id's party the approver and signs the approval.
func (b *Build) Sign(id *party.Identity) error {
	card, err := id.Card().Marshal()
	if err != nil {
		return err
	}
	b.Type, b.Approver, b.Card, b.Signature = BuildType, id.Card().Fingerprint, json.RawMessage(bytes.TrimSpace(card)), nil
	if err := b.check(); err != nil {
		return err
	}
	msg, err := b.SigningBytes()
	if err != nil {
		return err
	}
	b.Signature = id.Sign(msg)
	return nil
}

// Marshal returns the approval as compact JSON, the form whose SHA-256 the
// log records (Digest).
func (b *Build) Marshal() ([]byte, error) { return json.Marshal(b) }

// Digest is "sha256:" and the hex SHA-256 of Marshal: the subject of the
// approval's log entry.
func (b *Build) Digest() (string, error) {
	data, err := b.Marshal()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// ParseBuild parses a signed approval strictly and verifies the
// approver's card and signature.
func ParseBuild(data []byte) (*Build, error) {
	if len(data) > MaxBuildSize {
		return nil, fmt.Errorf("%w: build approval is %d bytes, limit is %d", ErrMalformed, len(data), MaxBuildSize)
	}
	var b Build
	if err := decodeStrict(data, &b); err != nil {
		return nil, fmt.Errorf("%w: build approval: %v", ErrMalformed, err)
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	card, err := party.ParseCard(b.Card)
	if err != nil {
		return nil, fmt.Errorf("%w: build approval: approver card: %v", ErrMalformed, err)
	}
	if card.Fingerprint != b.Approver {
		return nil, fmt.Errorf("%w: build approval: the card is %.16s…, the approval names %.16s…", ErrUntrusted, card.Fingerprint, b.Approver)
	}
	msg, err := b.SigningBytes()
	if err != nil {
		return nil, err
	}
	if err := card.Verify(msg, b.Signature); err != nil {
		return nil, fmt.Errorf("%w: build approval: %v", ErrUntrusted, err)
	}
	return &b, nil
}

// check reports whether the approval's fields are well formed.
func (b *Build) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: build approval: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	m, err := hex.DecodeString(b.Measurement)
	switch {
	case b.Type != BuildType:
		return bad("type %q, want %q", b.Type, BuildType)
	case b.TEE == "" || len(b.TEE) > 32:
		return bad("tee %q: want a TEE type such as snp or tdx", b.TEE)
	case err != nil || len(m) < 16 || len(m) > 64 || hex.EncodeToString(m) != b.Measurement:
		return bad("measurement %q: want 16 to 64 bytes of lower-case hex", b.Measurement)
	case b.Version == "" || len(b.Version) > 128 || strings.ContainsAny(b.Version, "\x00\n\r"):
		return bad("version %q: want 1 to 128 characters on one line", b.Version)
	case len(b.Source) > 1024 || strings.ContainsAny(b.Source, "\x00\n\r"):
		return bad("source is over 1024 characters or spans lines")
	case b.ApprovedAt.IsZero():
		return bad("no approved_at time")
	}
	return nil
}
