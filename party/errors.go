package party

import "errors"

var (
	// ErrMalformedCard means a card is not valid: bad JSON, unknown or
	// missing fields, wrong key lengths, too large, or an unsupported version.
	ErrMalformedCard = errors.New("party: malformed card")
	// ErrFingerprintMismatch means a card's fingerprint does not match its
	// name and keys: the card was modified.
	ErrFingerprintMismatch = errors.New("party: card fingerprint does not match its contents")
	// ErrUnsupportedKEM means a KEM name or id that this package does not offer.
	ErrUnsupportedKEM = errors.New("party: unsupported KEM")
	// ErrInvalidName means a party name is empty, too long, or holds
	// control characters or surrounding spaces.
	ErrInvalidName = errors.New("party: invalid name")
	// ErrBadSignature means a signature does not verify under a card's
	// signing key.
	ErrBadSignature = errors.New("party: bad signature")
	// ErrMalformedCiphertext means a ciphertext is truncated or has an
	// unknown suite byte.
	ErrMalformedCiphertext = errors.New("party: malformed ciphertext")
	// ErrDecrypt means a ciphertext failed to open: it was modified, sealed
	// to another party, or sealed with a different info.
	ErrDecrypt = errors.New("party: decryption failed")
	// ErrMalformedIdentity means an identity file cannot be parsed.
	ErrMalformedIdentity = errors.New("party: malformed identity file")
	// ErrInsecurePermissions means an identity file is readable or writable
	// by group or others.
	ErrInsecurePermissions = errors.New("party: identity file permissions too open")
)
