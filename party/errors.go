package party

import (
	"errors"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrParty is the family of this package's sentinels: every one below
// wraps it and carries its kind of failure (internal/fault). A malformed
// ciphertext is Tampered, like one that does not open; an identity file that
// cannot be used is WrongKey.
var ErrParty = errors.New("party failed")

// Sentinel errors.
var (
	// ErrMalformedCard means a card is not valid: bad JSON, unknown or
	// missing fields, wrong key lengths, too large, or an unsupported version.
	ErrMalformedCard = fault.New(ErrParty, fault.Malformed, "party: malformed card")
	// ErrFingerprintMismatch means a card's fingerprint does not match its
	// name and keys: the card was modified.
	ErrFingerprintMismatch = fault.New(ErrParty, fault.Tampered, "party: card fingerprint does not match its contents")
	// ErrUnsupportedKEM means a KEM name or id that this package does not offer.
	ErrUnsupportedKEM = fault.New(ErrParty, fault.Unsupported, "party: unsupported KEM")
	// ErrInvalidName means a party name is empty, too long, or holds
	// control characters or surrounding spaces.
	ErrInvalidName = fault.New(ErrParty, fault.BadRequest, "party: invalid name")
	// ErrBadSignature means a signature does not verify under a card's
	// signing key.
	ErrBadSignature = fault.New(ErrParty, fault.BadSignature, "party: bad signature")
	// ErrMalformedCiphertext means a ciphertext is truncated or has an
	// unknown suite byte.
	ErrMalformedCiphertext = fault.New(ErrParty, fault.Tampered, "party: malformed ciphertext")
	// ErrDecrypt means a ciphertext failed to open: it was modified, sealed
	// to another party, or sealed with a different info.
	ErrDecrypt = fault.New(ErrParty, fault.Tampered, "party: decryption failed")
	// ErrMalformedIdentity means an identity file cannot be parsed.
	ErrMalformedIdentity = fault.New(ErrParty, fault.WrongKey, "party: malformed identity file")
	// ErrInsecurePermissions means an identity file is readable or writable
	// by group or others.
	ErrInsecurePermissions = fault.New(ErrParty, fault.WrongKey, "party: identity file permissions too open")
)
