package kek

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/kura-cc/kura/internal/keyfile"
)

// File is a KEK kept in a file: 32 random bytes, standard base64 (RFC 4648
// with padding) on one line, surrounding whitespace ignored. The file must be
// a regular file with no permission bits for group or others (0600 or 0400).
//
// Its ID is "file:sha256:" followed by the first 16 hex digits of
// SHA-256("kura kek id v1\x00" || key): stable, and useless for recovering the
// key.
type File struct {
	k gcmKEK
}

// GenerateFile writes a new random key to path, which must not exist, with
// mode 0600, and returns it.
func GenerateFile(path string) (*File, error) {
	key := make([]byte, keySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("kek: generate key: %w", err)
	}
	k, err := newFile(key)
	if err != nil {
		return nil, err
	}
	enc := make([]byte, base64.StdEncoding.EncodedLen(keySize)+1)
	base64.StdEncoding.Encode(enc, key)
	enc[len(enc)-1] = '\n'
	clear(key)
	defer clear(enc)
	if err := writeNewFile(path, enc); err != nil {
		return nil, err
	}
	return k, nil
}

// OpenFile reads the key in path. It returns an error wrapping
// ErrInsecureFile if group or others have any access to the file, and
// ErrInvalidKey if it does not hold exactly 32 base64-encoded bytes.
func OpenFile(path string) (*File, error) {
	data, err := keyfile.ReadSecret(path)
	if errors.Is(err, keyfile.ErrInsecure) {
		return nil, fmt.Errorf("%w: %w", ErrInsecureFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	defer clear(data)
	trimmed := bytes.TrimSpace(data)
	key := make([]byte, base64.StdEncoding.DecodedLen(len(trimmed)))
	defer clear(key)
	n, err := base64.StdEncoding.Decode(key, trimmed)
	if err != nil || n != keySize {
		return nil, fmt.Errorf("%w: %s does not hold %d base64-encoded bytes", ErrInvalidKey, path, keySize)
	}
	return newFile(key[:n])
}

func newFile(key []byte) (*File, error) {
	h := sha256.New()
	h.Write([]byte("kura kek id v1\x00"))
	h.Write(key)
	id := "file:sha256:" + hex.EncodeToString(h.Sum(nil)[:8])
	k, err := newGCMKEK(id, key)
	if err != nil {
		return nil, err
	}
	return &File{k: k}, nil
}

// writeNewFile creates path with mode 0600, failing if it exists, and
// writes data durably.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("kek: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(fmt.Errorf("kek: write %s: %w", path, err), os.Remove(path))
	}
	return nil
}

// ID returns the KEK's identifier, "file:sha256:<16 hex digits>".
func (k *File) ID() string { return k.k.id }

// Wrap encrypts dek under the key with AES-256-GCM, binding aad.
func (k *File) Wrap(ctx context.Context, dek, aad []byte) ([]byte, error) {
	return k.k.wrap(ctx, dek, aad)
}

// Unwrap decrypts a key wrapped by Wrap with the same aad; any failure
// returns ErrUnwrap.
func (k *File) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	return k.k.unwrap(ctx, wrapped, aad)
}

// String returns REDACTED.
func (File) String() string { return redacted }

// GoString returns REDACTED.
func (File) GoString() string { return redacted }

// Format prints REDACTED for every verb.
func (File) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue logs the KEK as REDACTED.
func (File) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON encodes the KEK as the string "REDACTED".
func (File) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText encodes the KEK as REDACTED.
func (File) MarshalText() ([]byte, error) { return []byte(redacted), nil }
