package party

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// CardVersion is the only card format version.
const CardVersion = 1

// MaxCardSize bounds the size of a card ParseCard accepts.
const MaxCardSize = 16 << 10

// MaxNameLen bounds the length of a party name, in bytes.
const MaxNameLen = 128

// Card is a party's public, shareable description: its name, signing key and
// receiving key. Obtain one from [ParseCard] or [Identity.Card]; a Card built
// by hand is not checked.
type Card struct {
	Version      int          `json:"version"`
	Name         string       `json:"name"`
	SigningKey   []byte       `json:"signing_key"` // Ed25519 public key
	ReceivingKey ReceivingKey `json:"receiving_key"`
	CreatedAt    time.Time    `json:"created_at"`
	Fingerprint  string       `json:"fingerprint"` // see the package doc
}

// ReceivingKey is a card's HPKE public key.
type ReceivingKey struct {
	KEM       string `json:"kem"`    // "x25519" or "mlkem768-x25519"
	KEMID     uint16 `json:"kem_id"` // HPKE KEM id: 0x0020 (32) or 0x647a (25722)
	PublicKey []byte `json:"public_key"`
}

// ParseCard parses and checks a card: known fields only, supported version
// and KEM, correct key lengths, a valid name, and a fingerprint that matches
// the name and keys. It does not say whether the card belongs to whom it
// names; compare the fingerprint out of band for that.
func ParseCard(data []byte) (*Card, error) {
	if len(data) > MaxCardSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMalformedCard, MaxCardSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c Card
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedCard, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the card", ErrMalformedCard)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	if got := c.computeFingerprint(); got != c.Fingerprint {
		return nil, fmt.Errorf("%w: card says %s, contents hash to %s", ErrFingerprintMismatch, c.Fingerprint, got)
	}
	return &c, nil
}

// check validates everything but the fingerprint.
func (c *Card) check() error {
	if c.Version != CardVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrMalformedCard, c.Version, CardVersion)
	}
	if err := checkName(c.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedCard, err)
	}
	if len(c.SigningKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signing_key is %d bytes, want %d", ErrMalformedCard, len(c.SigningKey), ed25519.PublicKeySize)
	}
	if _, err := c.hpkeKey(); err != nil {
		return err
	}
	if c.CreatedAt.IsZero() {
		return fmt.Errorf("%w: created_at missing", ErrMalformedCard)
	}
	if len(c.Fingerprint) != 2*sha256.Size {
		return fmt.Errorf("%w: fingerprint is not %d hex digits", ErrMalformedCard, 2*sha256.Size)
	}
	return nil
}

// hpkeKey checks the receiving key and returns it as an HPKE public key.
func (c *Card) hpkeKey() (hpke.PublicKey, error) {
	rk := c.ReceivingKey
	k, ok := kemByID(rk.KEMID)
	if !ok {
		return nil, fmt.Errorf("%w: %w: kem_id 0x%04x", ErrMalformedCard, ErrUnsupportedKEM, rk.KEMID)
	}
	if rk.KEM != k.String() {
		return nil, fmt.Errorf("%w: kem %q does not match kem_id 0x%04x (%s)", ErrMalformedCard, rk.KEM, rk.KEMID, k)
	}
	if n := kems[k].pubLen; len(rk.PublicKey) != n {
		return nil, fmt.Errorf("%w: %s public_key is %d bytes, want %d", ErrMalformedCard, k, len(rk.PublicKey), n)
	}
	pk, err := kems[k].kem().NewPublicKey(rk.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s public_key: %w", ErrMalformedCard, k, err)
	}
	return pk, nil
}

// checkName reports whether name is a usable party name.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrInvalidName)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: %q has surrounding spaces", ErrInvalidName, name)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return fmt.Errorf("%w: %q has control characters", ErrInvalidName, name)
	}
	return nil
}

// computeFingerprint returns the fingerprint of c's name and keys (package doc).
func (c *Card) computeFingerprint() string {
	h := sha256.New()
	var b []byte
	b = append(b, "kura party card v1\x00"...)
	b = appendField(b, []byte(c.Name))
	b = appendField(b, c.SigningKey)
	b = binary.BigEndian.AppendUint16(b, c.ReceivingKey.KEMID)
	b = appendField(b, c.ReceivingKey.PublicKey)
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func appendField(b, f []byte) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(f))), f...)
}

// Marshal returns the card as indented JSON with a final newline.
func (c *Card) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// KEM returns the card's receiving key KEM.
func (c *Card) KEM() (KEMChoice, error) {
	k, ok := kemByID(c.ReceivingKey.KEMID)
	if !ok {
		return 0, fmt.Errorf("%w: kem_id 0x%04x", ErrUnsupportedKEM, c.ReceivingKey.KEMID)
	}
	return k, nil
}

// Verify checks sig, made by [Identity.Sign], over msg with the card's
// signing key. It returns ErrBadSignature if it does not verify.
func (c *Card) Verify(msg, sig []byte) error {
	if len(c.SigningKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: signing_key is %d bytes", ErrMalformedCard, len(c.SigningKey))
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(ed25519.PublicKey(c.SigningKey), msg, sig) {
		return fmt.Errorf("%w: not signed by %s (%s)", ErrBadSignature, c.Name, c.Fingerprint)
	}
	return nil
}

// SealTo encrypts plaintext to the card's receiving key with HPKE, binding
// info (which the recipient must give to Open). The output format is in the
// package doc.
func (c *Card) SealTo(plaintext, info []byte) ([]byte, error) {
	pk, err := c.hpkeKey()
	if err != nil {
		return nil, err
	}
	k, _ := kemByID(c.ReceivingKey.KEMID)
	ct, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), info, plaintext)
	if err != nil {
		return nil, fmt.Errorf("party: seal to %s: %w", c.Name, err)
	}
	return append([]byte{kems[k].suite}, ct...), nil
}
