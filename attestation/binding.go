package attestation

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// Limits on runtime data fields.
const (
	MinNonceSize     = 16
	MaxNonceSize     = 64
	MaxPublicKeySize = 8 << 10
	MaxContextSize   = 8 << 10
)

// ReportDataSize is the size of the hardware report_data field on SNP and TDX.
const ReportDataSize = 64

// runtimeDataTag separates kura's runtime-data hash from any other use of SHA-512.
const runtimeDataTag = "kura/runtime-data/v1"

// RuntimeData is the data an attester binds into the hardware report_data:
// the verifier's nonce, the attester's public key (usually a JWK serialised
// as JSON, whose private half never leaves the TEE), and an optional
// caller-defined context such as a manifest hash and run id.
type RuntimeData struct {
	Nonce     []byte `json:"nonce"`
	PublicKey []byte `json:"public_key,omitempty"`
	Context   []byte `json:"context,omitempty"`
}

// Empty reports whether no runtime data was bound: evidence captured outside
// kura (raw vendor artifacts) has none, and its binding cannot be checked.
func (r *RuntimeData) Empty() bool { return len(r.Nonce) == 0 }

// Check reports whether the runtime data fields are within their limits.
// Runtime data is either empty or carries a nonce.
func (r *RuntimeData) Check() error {
	switch {
	case len(r.Nonce) == 0 && (len(r.PublicKey) > 0 || len(r.Context) > 0):
		return fmt.Errorf("%w: runtime data has a public key or context but no nonce", ErrMalformed)
	case len(r.Nonce) != 0 && (len(r.Nonce) < MinNonceSize || len(r.Nonce) > MaxNonceSize):
		return fmt.Errorf("%w: nonce is %d bytes, want %d to %d", ErrMalformed, len(r.Nonce), MinNonceSize, MaxNonceSize)
	case len(r.PublicKey) > MaxPublicKeySize:
		return fmt.Errorf("%w: public key is %d bytes, limit is %d", ErrMalformed, len(r.PublicKey), MaxPublicKeySize)
	case len(r.Context) > MaxContextSize:
		return fmt.Errorf("%w: context is %d bytes, limit is %d", ErrMalformed, len(r.Context), MaxContextSize)
	}
	return nil
}

// Hash returns SHA-512 over the tag and the length-prefixed public key and
// context (docs/spec/attestation.md §3).
func (r *RuntimeData) Hash() [sha512.Size]byte {
	h := sha512.New()
	h.Write([]byte(runtimeDataTag))
	var n [4]byte
	for _, field := range [][]byte{r.PublicKey, r.Context} {
		binary.BigEndian.PutUint32(n[:], uint32(len(field)))
		h.Write(n[:])
		h.Write(field)
	}
	var out [sha512.Size]byte
	h.Sum(out[:0])
	return out
}

// ReportData returns the value the hardware report_data must hold:
// SHA-512(nonce ‖ Hash()).
func (r *RuntimeData) ReportData() [ReportDataSize]byte {
	inner := r.Hash()
	h := sha512.New()
	h.Write(r.Nonce)
	h.Write(inner[:])
	var out [ReportDataSize]byte
	h.Sum(out[:0])
	return out
}
