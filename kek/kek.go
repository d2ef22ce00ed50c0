// Package kek provides key-encryption keys (KEKs): keys that wrap and unwrap
// the data-encryption keys (DEKs) a kura key broker seals its resources with.
//
// Two KEKs are built in: File, 32 random bytes kept in a file that only its
// owner may read, and Passphrase, a key derived with Argon2id from a
// passphrase and a salt persisted in a parameters file. The KEK interface is
// small enough for a cloud KMS or a PKCS#11 token to implement. A Keyring
// holds several KEKs by ID with one current KEK for wrapping; rotation adds a
// new KEK as current, re-wraps every DEK and then removes the old KEK.
//
// # Wrapped format
//
// File and Passphrase wrap with AES-256-GCM: the output is one version byte
// (1), a random 12-byte nonce, then the GCM ciphertext and 16-byte tag. The
// additional data is "kura/kek/v1", a zero byte, the KEK's ID, a zero byte and
// the caller's aad, so a wrapped key opens only under the same KEK and the
// same aad. Random nonces keep the usual AES-GCM bound: wrap fewer than 2^32
// keys under one KEK (rotate long before that).
//
// # Security model
//
// A KEK never leaves the process that loaded it; IDs are derived from public
// data (a domain-separated hash of the key, or of the salt) and never reveal
// the key. Every failure to unwrap — wrong KEK, wrong aad, tampered or
// truncated input — returns ErrUnwrap and nothing else, so callers cannot be
// used as an oracle on which check failed. Types holding key material print
// REDACTED through fmt, slog and encoding/json.
package kek

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/kura-cc/kura/internal/fault"
)

// KEK wraps and unwraps data-encryption keys.
type KEK interface {
	// ID returns the stable identifier of this KEK version, such as
	// "file:sha256:0123456789abcdef" or "passphrase:0123456789abcdef". It is
	// recorded next to every key the KEK wraps and never reveals the key.
	ID() string
	// Wrap encrypts dek, binding aad, which must be given again to Unwrap.
	Wrap(ctx context.Context, dek []byte, aad []byte) ([]byte, error)
	// Unwrap decrypts a key returned by Wrap with the same aad. Any failure
	// to authenticate the input returns an error wrapping ErrUnwrap.
	Unwrap(ctx context.Context, wrapped []byte, aad []byte) ([]byte, error)
}

// ErrKEK is the family of this package's sentinels: every one below wraps
// it and carries its kind of failure (internal/fault).
var ErrKEK = errors.New("key-encryption key failed")

// Sentinel errors. A key that does not fit or cannot be used is
// fault.WrongKey (on a server, an internal failure: the operator's keys).
var (
	// ErrUnwrap means a wrapped key did not open: wrong KEK, wrong aad,
	// tampered or truncated.
	ErrUnwrap = fault.New(ErrKEK, fault.WrongKey, "kek: cannot unwrap key")
	// ErrUnknownKEK means a Keyring holds no KEK with the requested ID.
	ErrUnknownKEK = fault.New(ErrKEK, fault.WrongKey, "kek: unknown key-encryption key")
	// ErrDuplicateKEK means a Keyring already holds a KEK with that ID.
	ErrDuplicateKEK = fault.New(ErrKEK, fault.Conflict, "kek: key-encryption key already in keyring")
	// ErrCurrentKEK means the current KEK of a Keyring cannot be removed.
	ErrCurrentKEK = fault.New(ErrKEK, fault.Conflict, "kek: cannot remove the current key-encryption key")
	// ErrInsecureFile means a key file is readable or writable by group or
	// others, or is not a regular file.
	ErrInsecureFile = fault.New(ErrKEK, fault.WrongKey, "kek: key file permissions too open")
	// ErrInvalidKey means a key file or parameters file is malformed, or a
	// key, passphrase or parameter is unacceptable.
	ErrInvalidKey = fault.New(ErrKEK, fault.WrongKey, "kek: invalid key")
	// ErrWrongPassphrase means a passphrase does not match the check value
	// stored in its parameters file.
	ErrWrongPassphrase = fault.New(ErrKEK, fault.WrongKey, "kek: wrong passphrase")
)

// redacted is what key material prints as.
const redacted = "REDACTED"

const (
	keySize       = 32
	formatVersion = 1
	aadPrefix     = "kura/kek/v1"
	// maxDEKSize bounds what Wrap accepts; DEKs are 32 bytes.
	maxDEKSize = 1024
)

// gcmKEK is the AES-256-GCM wrapping shared by File and Passphrase. It keeps
// only the expanded cipher, never the raw key bytes.
type gcmKEK struct {
	id   string
	aead cipher.AEAD
}

func newGCMKEK(id string, key []byte) (gcmKEK, error) {
	if len(key) != keySize {
		return gcmKEK{}, fmt.Errorf("%w: key is %d bytes, want %d", ErrInvalidKey, len(key), keySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return gcmKEK{}, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return gcmKEK{}, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return gcmKEK{id: id, aead: aead}, nil
}

func (k gcmKEK) additionalData(aad []byte) []byte {
	ad := make([]byte, 0, len(aadPrefix)+len(k.id)+2+len(aad))
	ad = append(ad, aadPrefix...)
	ad = append(ad, 0)
	ad = append(ad, k.id...)
	ad = append(ad, 0)
	return append(ad, aad...)
}

func (k gcmKEK) wrap(ctx context.Context, dek, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(dek) == 0 || len(dek) > maxDEKSize {
		return nil, fmt.Errorf("%w: data-encryption key is %d bytes, want 1..%d", ErrInvalidKey, len(dek), maxDEKSize)
	}
	ns := k.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(dek)+k.aead.Overhead())
	out[0] = formatVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("kek: nonce: %w", err)
	}
	return k.aead.Seal(out, out[1:], dek, k.additionalData(aad)), nil
}

func (k gcmKEK) unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ns := k.aead.NonceSize()
	if len(wrapped) < 1+ns+k.aead.Overhead() || wrapped[0] != formatVersion {
		return nil, ErrUnwrap
	}
	dek, err := k.aead.Open(nil, wrapped[1:1+ns], wrapped[1+ns:], k.additionalData(aad))
	if err != nil {
		return nil, ErrUnwrap
	}
	return dek, nil
}
