package result

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/party"
)

// Payload types of the two envelopes.
const (
	BundleType   = "application/vnd.kura.result-bundle+json"
	ReceiptType  = "application/vnd.kura.deletion-receipt+json"
	RunStartType = "application/vnd.kura.run-start+json"
)

// FormatVersion is the bundle and receipt format this package writes.
const FormatVersion = 1

// MaxSize bounds an encoded bundle or receipt file.
const MaxSize = 64 << 20

// ErrResult is the family of this package's sentinels: every one below
// wraps it and carries its kind of failure (internal/fault).
var ErrResult = errors.New("result failed")

// Errors callers tell apart.
var (
	// ErrMalformed means a bundle, receipt or something they embed does not
	// parse.
	ErrMalformed = fault.New(ErrResult, fault.Malformed, "result: malformed")
	// ErrBadSignature means the bundle's or receipt's signature does not
	// verify under the attested key.
	ErrBadSignature = fault.New(ErrResult, fault.BadSignature, "result: bad signature")
	// ErrUntrusted means a check of who produced the result failed: the
	// attestation token, its binding to the run, the worker measurement,
	// or an approval.
	ErrUntrusted = fault.New(ErrResult, fault.Untrusted, "result: not trustworthy")
	// ErrNotReceiver means the bundle holds no copy of the result for the
	// opening party.
	ErrNotReceiver = fault.New(ErrResult, fault.WrongKey, "result: not a receiver")
	// ErrTampered means a decrypted result does not match its signed digest.
	ErrTampered = fault.New(ErrResult, fault.Tampered, "result: output does not match the signed digest")
)

// Bundle is what a clean-room run returns: the signed statement of which
// approved analysis ran on which sealed inputs in which attested worker, and
// the output encrypted to each receiver.
type Bundle struct {
	Version int    `json:"v"`
	Run     []byte `json:"run"` // the exact RunContext bytes the worker bound into its attestation
	// CreatedAt is the worker's clock when it signed. Tokens are checked
	// for validity at this time.
	CreatedAt time.Time `json:"created_at"`
	Inputs    []Input   `json:"inputs"`
	// OutputSHA256 is the hex SHA-256 of the plaintext output (the
	// analysis result's canonical encoding).
	OutputSHA256   string   `json:"output_sha256"`
	SuppressedRows int      `json:"suppressed_rows"`
	Outputs        []Sealed `json:"outputs"`
	// Evidence is the worker's attestation evidence bundle
	// (docs/spec/attestation.md §2); EAR is the token a verifier issued for
	// it.
	Evidence json.RawMessage `json:"evidence"`
	EAR      string          `json:"ear"`
	// Agents, on the cryptographic backend instead of Evidence and EAR,
	// are the owners' agents' signed statements, one per dataset read, in
	// the analysis's order (docs/spec/mpc.md §5).
	Agents []*Envelope `json:"agents,omitempty"`
	// Collaboration is the collaboration file (manifest versions and
	// approvals) the run was for, so a receiver can check every approval
	// offline.
	Collaboration json.RawMessage `json:"collaboration"`
}

// Input is one dataset the run read.
type Input struct {
	Dataset      string `json:"dataset"`
	SealedSHA256 string `json:"sealed_sha256"`
	KeyResource  string `json:"key_resource"`
}

// Sealed is the output encrypted (HPKE) to one receiver's card.
type Sealed struct {
	Receiver    string `json:"receiver"`    // party name
	Fingerprint string `json:"fingerprint"` // the card's fingerprint
	Ciphertext  []byte `json:"ciphertext"`
}

// File is a signed bundle or receipt as stored and sent: the DSSE envelope
// and, once the run's log entry is integrated, the transparency-log proof
// of the envelope (which the signature cannot cover).
type File struct {
	Envelope *Envelope       `json:"envelope"`
	LogProof json.RawMessage `json:"log_proof,omitempty"`
}

// sealInfo is the HPKE info for a receiver's copy: it binds the run id and
// the receiver, so a copy cannot be moved to another bundle or party.
func sealInfo(runID, fingerprint string) []byte {
	return []byte("kura result v1 " + runID + " " + fingerprint)
}

// SealOutput encrypts the output to each receiver.
func SealOutput(output []byte, runID string, receivers []*party.Card) ([]Sealed, error) {
	out := make([]Sealed, 0, len(receivers))
	for _, c := range receivers {
		ct, err := c.SealTo(output, sealInfo(runID, c.Fingerprint))
		if err != nil {
			return nil, fmt.Errorf("encrypt the result to %s: %w", c.Name, err)
		}
		out = append(out, Sealed{Receiver: c.Name, Fingerprint: c.Fingerprint, Ciphertext: ct})
	}
	return out, nil
}

// SignBundle signs b with the run's ephemeral key and returns the file to
// hand out.
func SignBundle(b *Bundle, key ed25519.PrivateKey) (*File, error) {
	b.Version = FormatVersion
	payload, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return &File{Envelope: sign(BundleType, payload, key)}, nil
}

// Marshal encodes the file.
func (f *File) Marshal() ([]byte, error) { return json.MarshalIndent(f, "", " ") }

// ParseFile decodes a bundle or receipt file; nothing is verified.
func ParseFile(data []byte) (*File, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(data), MaxSize)
	}
	var f File
	if err := decodeStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if f.Envelope == nil {
		return nil, fmt.Errorf("%w: no envelope", ErrMalformed)
	}
	return &f, nil
}

// DigestHex returns the hex SHA-256 of b.
func DigestHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// decodeBundle decodes a bundle payload and its run context.
func decodeBundle(payload []byte) (*Bundle, *collab.RunContext, error) {
	var b Bundle
	if err := decodeStrict(payload, &b); err != nil {
		return nil, nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	if b.Version != FormatVersion {
		return nil, nil, fmt.Errorf("%w: bundle version %d, want %d", ErrMalformed, b.Version, FormatVersion)
	}
	rc, err := collab.ParseRunContext(b.Run)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: bundle run context: %w", ErrMalformed, err)
	}
	return &b, rc, nil
}

// Cell renders a value of a decrypted result (decoded with UseNumber) as
// text, as kura result open --format csv writes it and the web console
// shows it: null is empty, strings are as they are, numbers exactly as
// signed, lists as JSON.
func Cell(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool, float64:
		return fmt.Sprint(x), nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}
