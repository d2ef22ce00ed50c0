package timelock

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/kura-cc/kura/party"
)

// RegistrationVersion is the only registration format version.
const RegistrationVersion = 1

// MaxRegistrationSize bounds a registration document.
const MaxRegistrationSize = 64 << 10

// Registration is the public record of a sealing, written next to the
// sealed file and meant for a transparency log (docs/spec/timelock.md §5):
// it lets anyone later check that a file is the one sealed, to which round,
// and for whom.
type Registration struct {
	Version      int       `json:"version"`
	Format       string    `json:"format"`
	SealedSHA256 string    `json:"sealed_sha256"`
	SealedSize   int64     `json:"sealed_size"`
	ChainHash    string    `json:"chain_hash"`
	Round        uint64    `json:"round"`
	ReleaseTime  time.Time `json:"release_time"`
	SealedAt     time.Time `json:"sealed_at"`
	Recipients   []string  `json:"recipients,omitempty"`
	// Sealer is the fingerprint of the sealer's party card, when given.
	// A registration that names a sealer carries the card and the sealer's
	// signature (Sign), so no one can attribute a sealing to another party.
	Sealer string `json:"sealer,omitempty"`
	// SealerCard is the sealer's party card (JSON), present with Sealer.
	SealerCard json.RawMessage `json:"sealer_card,omitempty"`
	// Signature is the sealer's Ed25519 signature over SigningBytes,
	// present with Sealer.
	Signature []byte `json:"signature,omitempty"`
}

// registrationContext prefixes what a sealer signs.
const registrationContext = "kura timelock registration v1\n"

// SigningBytes returns what the sealer signs: a context string, then the
// registration's compact JSON without its signature.
func (r *Registration) SigningBytes() ([]byte, error) {
	c := *r
	c.Signature = nil
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return append([]byte(registrationContext), b...), nil
}

// Sign names id's party as the sealer and signs the registration with its
// signing key.
func (r *Registration) Sign(id *party.Identity) error {
	card, err := id.Card().Marshal()
	if err != nil {
		return err
	}
	r.Sealer, r.SealerCard, r.Signature = id.Card().Fingerprint, json.RawMessage(bytes.TrimSpace(card)), nil
	msg, err := r.SigningBytes()
	if err != nil {
		return err
	}
	r.Signature = id.Sign(msg)
	return nil
}

// checkSealer verifies a named sealer's card and signature.
func (r *Registration) checkSealer() error {
	if r.Sealer == "" {
		if r.SealerCard != nil || r.Signature != nil {
			return fmt.Errorf("%w: registration: a sealer card or signature without a sealer", ErrMalformed)
		}
		return nil
	}
	if r.SealerCard == nil || r.Signature == nil {
		return fmt.Errorf("%w: registration names sealer %.16s… without its card and signature: sign it with the sealer's identity (kura timelock seal --sealer DIR)", ErrMalformed, r.Sealer)
	}
	card, err := party.ParseCard(r.SealerCard)
	if err != nil {
		return fmt.Errorf("%w: registration: sealer card: %w", ErrMalformed, err)
	}
	if card.Fingerprint != r.Sealer {
		return fmt.Errorf("%w: registration: the sealer card is %.16s…, the registration names %.16s…", ErrTampered, card.Fingerprint, r.Sealer)
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return err
	}
	if err := card.Verify(msg, r.Signature); err != nil {
		return fmt.Errorf("%w: registration: %w", ErrTampered, err)
	}
	return nil
}

// Marshal returns the registration as indented JSON with a final newline.
func (r *Registration) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	return append(b, '\n'), err
}

// ParseRegistration parses a registration strictly: known fields only,
// version 1, well-formed hashes and fingerprints.
func ParseRegistration(data []byte) (*Registration, error) {
	if len(data) > MaxRegistrationSize {
		return nil, fmt.Errorf("%w: registration larger than %d bytes", ErrMalformed, MaxRegistrationSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Registration
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: registration: %w", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: registration: trailing data", ErrMalformed)
	}
	hex32 := func(s string) bool {
		b, err := hex.DecodeString(s)
		return err == nil && len(b) == 32 && hex.EncodeToString(b) == s
	}
	switch {
	case r.Version != RegistrationVersion:
		return nil, fmt.Errorf("%w: registration version %d", ErrMalformed, r.Version)
	case r.Format != FormatTlock && r.Format != FormatKura:
		return nil, fmt.Errorf("%w: registration format %q", ErrMalformed, r.Format)
	case !hex32(r.SealedSHA256) || !hex32(r.ChainHash) || (r.Sealer != "" && !hex32(r.Sealer)):
		return nil, fmt.Errorf("%w: registration: bad hash or fingerprint", ErrMalformed)
	case r.Round == 0 || r.SealedSize <= 0 || r.ReleaseTime.IsZero() || r.SealedAt.IsZero():
		return nil, fmt.Errorf("%w: registration: missing round, size or times", ErrMalformed)
	}
	for _, f := range r.Recipients {
		if !hex32(f) {
			return nil, fmt.Errorf("%w: registration: bad recipient fingerprint", ErrMalformed)
		}
	}
	if !r.SealedAt.Before(r.ReleaseTime) {
		return nil, fmt.Errorf("%w: registration: sealed at %s, not before its release time %s", ErrMalformed, r.SealedAt.UTC().Format(time.RFC3339), r.ReleaseTime.UTC().Format(time.RFC3339))
	}
	if ci := knownChain(r.ChainHash); ci != nil {
		if t, err := ci.TimeOf(r.Round); err == nil && !t.Equal(r.ReleaseTime) {
			return nil, fmt.Errorf("%w: registration: round %d of this chain is published at %s, the registration says %s", ErrMalformed, r.Round, t.UTC().Format(time.RFC3339), r.ReleaseTime.UTC().Format(time.RFC3339))
		}
	}
	if err := r.checkSealer(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Verify checks that sealed is the file this registration describes: same
// SHA-256 and size, and a header naming the same format, chain, round and
// recipients; that the release time is the round's time when the chain's
// schedule is known offline; and that sealing happened before release.
// Any mismatch is ErrTampered.
func (r *Registration) Verify(sealed io.Reader) error {
	h := sha256.New()
	var n int64
	tee := io.TeeReader(sealed, writerFunc(func(p []byte) (int, error) { h.Write(p); n += int64(len(p)); return len(p), nil }))
	in, err := Inspect(tee)
	if err != nil {
		return fmt.Errorf("%w: sealed file: %w", ErrTampered, err)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	mismatch := func(what string, got, want any) error {
		return fmt.Errorf("%w: %s is %v, the registration says %v", ErrTampered, what, got, want)
	}
	switch {
	case sum != r.SealedSHA256:
		return mismatch("the file's SHA-256", sum, r.SealedSHA256)
	case n != r.SealedSize:
		return mismatch("the file's size", n, r.SealedSize)
	case in.Format != r.Format:
		return mismatch("the format", in.Format, r.Format)
	case in.ChainHash != r.ChainHash:
		return mismatch("the chain", in.ChainHash, r.ChainHash)
	case in.Round != r.Round:
		return mismatch("the round", in.Round, r.Round)
	case !slices.Equal(in.Recipients, r.Recipients):
		return mismatch("the recipients", in.Recipients, r.Recipients)
	case !in.ReleaseTime.IsZero() && !in.ReleaseTime.Equal(r.ReleaseTime):
		return mismatch("round's release time", in.ReleaseTime.UTC().Format(time.RFC3339), r.ReleaseTime.UTC().Format(time.RFC3339))
	case !r.SealedAt.Before(r.ReleaseTime):
		return fmt.Errorf("%w: sealed at %s, not before the release time %s", ErrTampered, r.SealedAt, r.ReleaseTime)
	}
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
