package trust

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/kura-cc/kura/attestation"
)

// DocumentVersion is the only version of Document this package reads.
const DocumentVersion = 1

// MaxDocumentSize bounds an encoded document: a composite bundle (CPU and
// GPU evidence) is at most attestation.MaxBundleSize.
const MaxDocumentSize = attestation.MaxBundleSize + 256<<10

// Purpose is the purpose a gateway's runtime-data context names.
const Purpose = "kura-ai-gateway/v1"

// Document is what a gateway publishes about itself at GET
// /.well-known/kura/attestation (docs/spec/inference.md §6): the EAR a
// verifier issued for its evidence, whose runtime data binds the gateway's
// HPKE key configurations (the public key) and its Context (the context);
// the evidence itself, for clients that re-verify it; and the signed
// approval of its build with the approval's inclusion proof in kura's
// transparency log.
type Document struct {
	Version    int                 `json:"version"`
	Token      string              `json:"token"`
	Evidence   *attestation.Bundle `json:"evidence,omitempty"`
	Build      json.RawMessage     `json:"build,omitempty"`
	BuildProof json.RawMessage     `json:"build_proof,omitempty"`
}

// Context is the runtime-data context a gateway binds into its evidence
// next to its key configurations: the purpose, and the SHA-256 of the
// SubjectPublicKeyInfo of its TLS certificate's key when it serves TLS.
type Context struct {
	Purpose string `json:"purpose"`
	TLSSPKI string `json:"tls_spki_sha256,omitempty"` // lower-case hex
}

// Marshal returns the context's canonical encoding, as bound.
func (c Context) Marshal() []byte {
	b, _ := json.Marshal(c) // two strings: cannot fail
	return b
}

// ParseDocument decodes a document strictly.
func ParseDocument(data []byte) (*Document, error) {
	if len(data) > MaxDocumentSize {
		return nil, fmt.Errorf("%w: attestation document is %d bytes, limit is %d", ErrMalformed, len(data), MaxDocumentSize)
	}
	var d Document
	if err := decodeStrict(data, &d); err != nil {
		return nil, fmt.Errorf("%w: attestation document: %v", ErrMalformed, err)
	}
	switch {
	case d.Version != DocumentVersion:
		return nil, fmt.Errorf("%w: attestation document version %d, want %d", ErrMalformed, d.Version, DocumentVersion)
	case d.Token == "":
		return nil, fmt.Errorf("%w: attestation document has no token", ErrMalformed)
	case (len(d.Build) == 0) != (len(d.BuildProof) == 0):
		return nil, fmt.Errorf("%w: attestation document has a build approval without its log proof, or a proof without the approval", ErrMalformed)
	}
	if d.Evidence != nil {
		if err := d.Evidence.Check(); err != nil {
			return nil, fmt.Errorf("%w: attestation document evidence: %w", ErrMalformed, err)
		}
	}
	return &d, nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}
