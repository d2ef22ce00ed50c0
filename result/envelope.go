package result

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/kura-cc/kura/collab"
)

// Envelope is a DSSE envelope (github.com/secure-systems-lab/dsse, v1.0.0)
// with one Ed25519 signature: the signature covers the payload type and the
// exact payload bytes, so nothing has to be re-encoded to be checked.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     []byte      `json:"payload"` // standard base64 in JSON
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature.
type Signature struct {
	KeyID string `json:"keyid"` // hex SHA-256 prefix of the public key, informational
	Sig   []byte `json:"sig"`
}

// pae is DSSE's pre-authentication encoding.
func pae(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

func keyID(pub ed25519.PublicKey) string {
	return hex.EncodeToString(pub[:8])
}

// sign wraps payload in an envelope signed by key.
func sign(payloadType string, payload []byte, key ed25519.PrivateKey) *Envelope {
	pub := key.Public().(ed25519.PublicKey)
	return &Envelope{
		PayloadType: payloadType,
		Payload:     payload,
		Signatures:  []Signature{{KeyID: keyID(pub), Sig: ed25519.Sign(key, pae(payloadType, payload))}},
	}
}

// verify checks that the envelope has the expected payload type and exactly
// one signature, by pub.
func (e *Envelope) verify(payloadType string, pub ed25519.PublicKey) error {
	if e.PayloadType != payloadType {
		return fmt.Errorf("%w: payload type %q, want %q", ErrMalformed, e.PayloadType, payloadType)
	}
	if len(e.Signatures) != 1 {
		return fmt.Errorf("%w: %d signatures, want exactly 1", ErrMalformed, len(e.Signatures))
	}
	if !ed25519.Verify(pub, pae(payloadType, e.Payload), e.Signatures[0].Sig) {
		return fmt.Errorf("%w: the signature does not verify with the run's attested signing key %s", ErrBadSignature, keyID(pub))
	}
	return nil
}

// decodeStrict decodes JSON into v, refusing unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// CheckSigned checks only that a bundle, receipt or run start is signed by the key of
// the run context it carries, and returns that context. It is what a log
// checks before recording the file's digest; receivers use VerifyBundle
// and VerifyReceipt, which check everything.
func CheckSigned(f *File) (*collab.RunContext, error) {
	var head struct {
		Run []byte `json:"run"`
	}
	if err := json.Unmarshal(f.Envelope.Payload, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	rc, err := collab.ParseRunContext(head.Run)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch f.Envelope.PayloadType {
	case BundleType, ReceiptType, RunStartType:
	default:
		return nil, fmt.Errorf("%w: payload type %q", ErrMalformed, f.Envelope.PayloadType)
	}
	if err := f.Envelope.verify(f.Envelope.PayloadType, rc.SigningKey); err != nil {
		return nil, err
	}
	return rc, nil
}
