package dataset

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kura-cc/kura/internal/keyfile"
)

// Key is a 32-byte data key. It prints as REDACTED in every format and log.
type Key struct{ b [KeySize]byte }

// NewKey returns a fresh random data key.
func NewKey() Key {
	var k Key
	rand.Read(k.b[:]) // never fails (crypto/rand)
	return k
}

// KeyFromBytes returns the key with the given 32 bytes.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != KeySize {
		return k, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidKey, len(b), KeySize)
	}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns a copy of the key's bytes.
func (k Key) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Wipe zeroes k. Copies of the key (Key is a value) and the AES key
// schedules derived from it are not reached; Go gives no way to wipe those,
// so a wiped key is a best effort, not a guarantee.
func (k *Key) Wipe() { clear(k.b[:]) }

// Equal reports whether two keys are equal, in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1 }

// String returns "REDACTED".
func (Key) String() string { return "REDACTED" }

// GoString returns "REDACTED".
func (Key) GoString() string { return "REDACTED" }

// Format prints REDACTED for every verb.
func (Key) Format(f fmt.State, _ rune) { io.WriteString(f, "REDACTED") }

// LogValue implements slog.LogValuer.
func (Key) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// MarshalText refuses to encode the key, so it cannot leak through JSON or YAML.
func (Key) MarshalText() ([]byte, error) {
	return nil, fmt.Errorf("%w: refusing to marshal a data key", ErrInvalidKey)
}

// KeyID is the public fingerprint of a data key (docs/spec/dataset.md §3).
type KeyID [32]byte

// String returns the key id in hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the key id in hex.
func (id KeyID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// ID returns the key's id: HKDF-SHA256 of the key with an empty salt and the
// info "kura dataset v1 key id". It is safe to publish, and commits to the key.
func (k Key) ID() KeyID {
	var id KeyID
	copy(id[:], derive(k.b[:], nil, infoKeyID))
	return id
}

const (
	infoKeyID     = "kura dataset v1 key id"
	infoChunkKey  = "kura dataset v1 chunk key"
	infoHeaderMAC = "kura dataset v1 header mac"
)

func derive(secret, salt []byte, info string) []byte {
	out, err := hkdf.Key(sha256.New, secret, salt, info, 32)
	if err != nil {
		panic(err) // only for lengths beyond 255*32 bytes
	}
	return out
}

// keyFilePrefix starts the single line of a key file.
const keyFilePrefix = "kura-data-key-v1 "

// WriteKeyFile creates path with mode 0600 and writes the key to it. It
// fails if path exists.
func WriteKeyFile(path string, k Key) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	_, err = io.WriteString(f, keyFilePrefix+hex.EncodeToString(k.b[:])+"\n")
	return err
}

// ReadKeyFile reads a key file written by WriteKeyFile. It refuses a file
// that its group or others may read or write (ErrInvalidKey, naming the
// chmod to run).
func ReadKeyFile(path string) (Key, error) {
	var k Key
	data, err := keyfile.ReadSecret(path)
	if errors.Is(err, keyfile.ErrInsecure) {
		return k, fmt.Errorf("%w: key file %w", ErrInvalidKey, err)
	}
	if err != nil {
		return k, fmt.Errorf("key file: %w", err)
	}
	defer clear(data)
	line := strings.TrimSpace(string(data))
	h, ok := strings.CutPrefix(line, keyFilePrefix)
	if !ok {
		return k, fmt.Errorf("%w: key file %s does not start with %q", ErrInvalidKey, path, strings.TrimSpace(keyFilePrefix))
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return k, fmt.Errorf("%w: key file %s: not hex", ErrInvalidKey, path)
	}
	return KeyFromBytes(b)
}
