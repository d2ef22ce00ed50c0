package result

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
)

// Receipt is a run's signed deletion statement: the attested worker, under
// the key bound into its attestation, states that it wiped the dataset keys
// and plaintext of the run and keeps nothing. It proves which measured code
// made the statement and when; that the code really wipes is a property of
// that code, which the owners approved by its measurement.
type Receipt struct {
	Version int    `json:"v"`
	Run     []byte `json:"run"` // the RunContext bytes, as in the bundle
	// ResultDigest is the hex SHA-256 of the result bundle's signed
	// payload; empty if the run failed before producing one.
	ResultDigest string      `json:"result_digest,omitempty"`
	Destroyed    []Destroyed `json:"destroyed"`
	DestroyedAt  time.Time   `json:"destroyed_at"`
	// Outcome is "completed" or "failed: <reason>".
	Outcome       string          `json:"outcome"`
	Evidence      json.RawMessage `json:"evidence"`
	EAR           string          `json:"ear"`
	Agents        []*Envelope     `json:"agents,omitempty"` // as in Bundle
	Collaboration json.RawMessage `json:"collaboration"`
}

// Destroyed is one dataset whose key and plaintext the run wiped.
type Destroyed struct {
	Dataset      string `json:"dataset"`
	SealedSHA256 string `json:"sealed_sha256"`
	KeyResource  string `json:"key_resource"`
	// KeyReleased says whether the broker released the key at all.
	KeyReleased bool `json:"key_released"`
	// PlaintextBytes is how much plaintext was held in memory and wiped.
	PlaintextBytes int64 `json:"plaintext_bytes"`
}

// SignReceipt signs r with the run's ephemeral key.
func SignReceipt(r *Receipt, key ed25519.PrivateKey) (*File, error) {
	r.Version = FormatVersion
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return &File{Envelope: sign(ReceiptType, payload, key)}, nil
}

// VerifiedReceipt is a receipt whose every check passed.
type VerifiedReceipt struct {
	*Attested
	Receipt *Receipt
}

// VerifyReceipt checks a deletion receipt offline: its signature with the
// run's signing key, the attestation token and its binding to the run and
// the evidence, and the worker measurement against the manifest. With
// bundle non-nil it also checks that the receipt is for that result.
func VerifyReceipt(ctx context.Context, f *File, bundle *VerifiedBundle, t Trust) (*VerifiedReceipt, error) {
	var r Receipt
	if err := decodeStrict(f.Envelope.Payload, &r); err != nil {
		return nil, fmt.Errorf("%w: receipt: %v", ErrMalformed, err)
	}
	if r.Version != FormatVersion {
		return nil, fmt.Errorf("%w: receipt version %d, want %d", ErrMalformed, r.Version, FormatVersion)
	}
	rc, err := collab.ParseRunContext(r.Run)
	if err != nil {
		return nil, fmt.Errorf("%w: receipt run context: %w", ErrMalformed, err)
	}
	if err := f.Envelope.verify(ReceiptType, ed25519.PublicKey(rc.SigningKey)); err != nil {
		return nil, err
	}
	a, err := runOf(ctx, r.Run, r.DestroyedAt, r.Evidence, r.EAR, r.Agents, r.Collaboration, t)
	if err != nil {
		return nil, err
	}
	a.Checks = append([]string{"receipt signed by the run's ephemeral key"}, a.Checks...)
	if t.Log != nil {
		msg, err := checkLogProof(f, auditlog.KindReceipt, rc.RunID, t.Log)
		if err != nil {
			return nil, err
		}
		a.Checks = append(a.Checks, msg)
	}
	if bundle != nil {
		if bundle.Run.RunID != a.Run.RunID || bundle.Digest != r.ResultDigest {
			return nil, fmt.Errorf("%w: the receipt is for run %s result %.16s…, not this bundle (run %s, %.16s…)", ErrUntrusted, a.Run.RunID, r.ResultDigest, bundle.Run.RunID, bundle.Digest)
		}
		a.Checks = append(a.Checks, "receipt is for this result bundle")
	}
	return &VerifiedReceipt{Attested: a, Receipt: &r}, nil
}

// RunStart is a run's signed announcement, made before it attests: which
// run of which manifest and analysis begins (the run context) and when. A
// log records it, so a run that never produces a result or receipt is
// still visible.
type RunStart struct {
	Version   int       `json:"v"`
	Run       []byte    `json:"run"`
	StartedAt time.Time `json:"started_at"`
}

// SignRunStart signs s with the run's ephemeral key.
func SignRunStart(s *RunStart, key ed25519.PrivateKey) (*File, error) {
	s.Version = FormatVersion
	payload, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return &File{Envelope: sign(RunStartType, payload, key)}, nil
}
