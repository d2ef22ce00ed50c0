package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/internal/keyfile"
)

// DefaultOrigin is the origin (checkpoint first line and key name) that
// GenerateKey uses when none is given.
const DefaultOrigin = "kura.local/log"

// SignerKey is a C2SP signed-note Ed25519 private key ("PRIVATE+KEY+..."),
// used by a log to sign checkpoints or by a witness to cosign them. It
// never prints its key material (String and LogValue say REDACTED).
type SignerKey struct {
	text   string
	name   string
	signer note.Signer
	vkey   string
}

// GenerateKey returns a new log (or witness) key named origin, and its
// verifier key text ("origin+hash+base64"), which is public.
func GenerateKey(origin string) (*SignerKey, string, error) {
	if origin == "" {
		origin = DefaultOrigin
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, "", fmt.Errorf("generate key for origin %q: %w (a name has no spaces or '+')", origin, err)
	}
	k, err := ParseSignerKey(skey)
	if err != nil {
		return nil, "", err
	}
	return k, vkey, nil
}

// ParseSignerKey parses a signed-note private key text.
func ParseSignerKey(text string) (*SignerKey, error) {
	text = strings.TrimSpace(text)
	s, err := note.NewSigner(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not a signed-note private key (want PRIVATE+KEY+name+hash+key)", ErrMalformed)
	}
	// The verifier key follows from the seed: PRIVATE+KEY+name+hash+base64(alg||seed).
	parts := strings.SplitN(text, "+", 5) // the base64 key may contain '+'
	if len(parts) != 5 {
		return nil, fmt.Errorf("%w: not a signed-note private key", ErrMalformed)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, fmt.Errorf("%w: signed-note private key is not Ed25519", ErrMalformed)
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(s.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &SignerKey{text: text, name: s.Name(), signer: s, vkey: vkey}, nil
}

// LoadSignerKey reads a private key file, refusing one that group or others
// can read or write (its mode must be 0600 or stricter) with an error
// wrapping keyfile.ErrInsecure that names the chmod to run.
func LoadSignerKey(path string) (*SignerKey, error) {
	b, err := keyfile.ReadSecret(path)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	defer clear(b)
	k, err := ParseSignerKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("log key %s: %w", path, err)
	}
	return k, nil
}

// WriteFile writes the private key to path with mode 0600, refusing to
// overwrite an existing file.
func (k *SignerKey) WriteFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; not overwriting a key", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(k.text + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Name is the key's name: for a log key, the log's origin.
func (k *SignerKey) Name() string { return k.name }

// Signer returns the note signer.
func (k *SignerKey) Signer() note.Signer { return k.signer }

// VerifierKey returns the public verifier key text.
func (k *SignerKey) VerifierKey() string { return k.vkey }

// Verifier returns the note verifier for the key.
func (k *SignerKey) Verifier() note.Verifier {
	v, _ := note.NewVerifier(k.vkey) // built from a valid key above
	return v
}

// String returns REDACTED.
func (k *SignerKey) String() string { return "REDACTED" }

// LogValue returns REDACTED, so a key never reaches a log.
func (k *SignerKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// ParseVerifierKey parses a log's signed-note verifier key text.
func ParseVerifierKey(text string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("%w: not a signed-note verifier key (want name+hash+base64): %v", ErrMalformed, err)
	}
	return v, nil
}

// ParseWitnessKey parses a witness's verifier key: an Ed25519 signed-note
// key (type 0x01) or an Ed25519 cosignature/v1 key (type 0x04); both verify
// C2SP tlog-cosignature cosignatures.
func ParseWitnessKey(text string) (note.Verifier, error) {
	v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("%w: not a witness verifier key: %v", ErrMalformed, err)
	}
	return v, nil
}

// CosignatureKey converts an Ed25519 verifier key (type 0x01) into the
// cosignature/v1 form (type 0x04) that tlog-witness clients and Tessera
// expect for a witness.
func CosignatureKey(vkey string) (string, error) {
	k, err := fnote.VKeyToCosignatureV1(strings.TrimSpace(vkey))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return k, nil
}
