package party

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kura-cc/kura/internal/keyfile"
)

// IdentityFile is the name of the private identity file in a party directory.
const IdentityFile = "identity.key"

const maxIdentitySize = 16 << 10

// Identity is a party's private keys. It prints, logs and marshals as
// REDACTED apart from its name and fingerprint.
type Identity struct {
	sign signingKey
	recv receivingKey
	card Card
}

// signingKey is an Ed25519 private key that never prints.
type signingKey struct{ k ed25519.PrivateKey }

// receivingKey is an HPKE private key that never prints.
type receivingKey struct {
	kem KEMChoice
	k   hpke.PrivateKey
}

// Generate creates a new identity named name with a fresh Ed25519 signing key
// and a fresh receiving key for kem.
func Generate(name string, kem KEMChoice) (*Identity, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if !kem.valid() {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKEM, kem)
	}
	_, sk, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	rk, err := kems[kem].kem().GenerateKey()
	if err != nil {
		return nil, err
	}
	return newIdentity(name, time.Now().UTC().Truncate(time.Second), sk, kem, rk), nil
}

func newIdentity(name string, created time.Time, sk ed25519.PrivateKey, kem KEMChoice, rk hpke.PrivateKey) *Identity {
	id := &Identity{sign: signingKey{sk}, recv: receivingKey{kem, rk}}
	id.card = Card{
		Version:    CardVersion,
		Name:       name,
		SigningKey: bytes.Clone(sk.Public().(ed25519.PublicKey)),
		ReceivingKey: ReceivingKey{
			KEM:       kem.String(),
			KEMID:     kem.ID(),
			PublicKey: rk.PublicKey().Bytes(),
		},
		CreatedAt: created,
	}
	id.card.Fingerprint = id.card.computeFingerprint()
	return id
}

// Name returns the party's name.
func (id *Identity) Name() string { return id.card.Name }

// Card returns the identity's public card.
func (id *Identity) Card() *Card {
	c := id.card
	c.SigningKey = bytes.Clone(c.SigningKey)
	c.ReceivingKey.PublicKey = bytes.Clone(c.ReceivingKey.PublicKey)
	return &c
}

// Sign signs msg with the party's Ed25519 key (pure Ed25519, no prehash).
func (id *Identity) Sign(msg []byte) []byte { return ed25519.Sign(id.sign.k, msg) }

// Open decrypts a ciphertext made by [Card.SealTo] for this identity's card
// with the same info. It returns ErrMalformedCiphertext for a truncated or
// unknown ciphertext and ErrDecrypt for one that does not authenticate.
func (id *Identity) Open(ciphertext, info []byte) ([]byte, error) {
	if len(ciphertext) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformedCiphertext)
	}
	k, ok := kemBySuite(ciphertext[0])
	if !ok {
		return nil, fmt.Errorf("%w: unknown suite byte 0x%02x", ErrMalformedCiphertext, ciphertext[0])
	}
	if min := 1 + kems[k].encLen + 16; len(ciphertext) < min {
		return nil, fmt.Errorf("%w: truncated (%d bytes, at least %d)", ErrMalformedCiphertext, len(ciphertext), min)
	}
	if k != id.recv.kem {
		return nil, fmt.Errorf("%w: sealed to a %s key, this identity has %s", ErrDecrypt, k, id.recv.kem)
	}
	pt, err := hpke.Open(id.recv.k, hpke.HKDFSHA256(), hpke.AES256GCM(), info, ciphertext[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: not sealed to %s with this info, or modified", ErrDecrypt, id.card.Name)
	}
	return pt, nil
}

// identityJSON is the identity file's format.
type identityJSON struct {
	Version     int       `json:"version"`
	Name        string    `json:"name"`
	CreatedAt   time.Time `json:"created_at"`
	SigningSeed []byte    `json:"signing_seed"` // Ed25519 seed, 32 bytes
	KEM         string    `json:"kem"`
	KEMID       uint16    `json:"kem_id"`
	Receiving   []byte    `json:"receiving_private_key"` // HPKE SerializePrivateKey
}

// Save writes the identity to dir/identity.key with mode 0600, creating dir
// (0700) if needed. It refuses to overwrite an existing file (fs.ErrExist).
func (id *Identity) Save(dir string) error {
	rb, err := id.recv.k.Bytes()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(identityJSON{
		Version:     CardVersion,
		Name:        id.card.Name,
		CreatedAt:   id.card.CreatedAt,
		SigningSeed: id.sign.k.Seed(),
		KEM:         id.recv.kem.String(),
		KEMID:       id.recv.kem.ID(),
		Receiving:   rb,
	}, "", "  ")
	if err != nil {
		return err
	}
	defer clear(data)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, IdentityFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("party: save identity: %w", err)
	}
	if err := errors.Join(writeAll(f, append(data, '\n')), f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("party: save identity: %w", err)
	}
	return nil
}

func writeAll(w io.Writer, b []byte) error { _, err := w.Write(b); return err }

// Load reads the identity saved in dir by [Identity.Save]. It refuses a file
// that group or others may read or write (ErrInsecurePermissions, naming the
// chmod to run).
func Load(dir string) (*Identity, error) {
	path := filepath.Join(dir, IdentityFile)
	data, err := keyfile.ReadSecret(path)
	if errors.Is(err, keyfile.ErrInsecure) {
		return nil, fmt.Errorf("%w: %w", ErrInsecurePermissions, err)
	}
	if err != nil {
		return nil, fmt.Errorf("party: load identity: %w", err)
	}
	defer clear(data)
	return ParseIdentity(data)
}

// ParseIdentity parses the contents of an identity file, as Load does once
// it has read and checked the file: for a program that was handed the
// contents rather than a path, such as the web console, to which the user
// gives the file in the browser.
func ParseIdentity(data []byte) (*Identity, error) {
	if len(data) > maxIdentitySize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedIdentity, maxIdentitySize)
	}
	return parseIdentity(data)
}

func parseIdentity(data []byte) (*Identity, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j identityJSON
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedIdentity, err)
	}
	defer clear(j.SigningSeed)
	defer clear(j.Receiving)
	if j.Version != CardVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformedIdentity, j.Version)
	}
	if err := checkName(j.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedIdentity, err)
	}
	if len(j.SigningSeed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: signing_seed is %d bytes", ErrMalformedIdentity, len(j.SigningSeed))
	}
	k, ok := kemByID(j.KEMID)
	if !ok || k.String() != j.KEM {
		return nil, fmt.Errorf("%w: %w: %q (0x%04x)", ErrMalformedIdentity, ErrUnsupportedKEM, j.KEM, j.KEMID)
	}
	rk, err := kems[k].kem().NewPrivateKey(j.Receiving)
	if err != nil {
		return nil, fmt.Errorf("%w: receiving key: %w", ErrMalformedIdentity, err)
	}
	return newIdentity(j.Name, j.CreatedAt, ed25519.NewKeyFromSeed(j.SigningSeed), k, rk), nil
}

// Redaction. fmt does not call methods on unexported fields, so Identity
// (by value, so that a copy is redacted too)
// redacts itself as a whole, and the key types redact themselves in case
// they are ever printed on their own.

const redacted = "REDACTED"

// String returns the name and fingerprint; the keys print as REDACTED.
func (id Identity) String() string {
	return fmt.Sprintf("party.Identity{name: %q, fingerprint: %s, keys: %s}", id.card.Name, id.card.Fingerprint, redacted)
}

// GoString implements fmt.GoStringer.
func (id Identity) GoString() string { return id.String() }

// Format implements fmt.Formatter: every verb prints String.
func (id Identity) Format(f fmt.State, _ rune) { io.WriteString(f, id.String()) }

// LogValue implements slog.LogValuer.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", id.card.Name), slog.String("fingerprint", id.card.Fingerprint), slog.String("keys", redacted))
}

// MarshalJSON implements json.Marshaler: the card's name and fingerprint, no keys.
func (id Identity) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"name": id.card.Name, "fingerprint": id.card.Fingerprint, "keys": redacted})
}

func (signingKey) String() string                 { return redacted }
func (signingKey) GoString() string               { return redacted }
func (signingKey) Format(f fmt.State, _ rune)     { io.WriteString(f, redacted) }
func (signingKey) LogValue() slog.Value           { return slog.StringValue(redacted) }
func (signingKey) MarshalJSON() ([]byte, error)   { return json.Marshal(redacted) }
func (receivingKey) String() string               { return redacted }
func (receivingKey) GoString() string             { return redacted }
func (receivingKey) Format(f fmt.State, _ rune)   { io.WriteString(f, redacted) }
func (receivingKey) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (receivingKey) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }
