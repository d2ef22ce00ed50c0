package kek

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/argon2"

	"github.com/kura-cc/kura/internal/keyfile"
)

// Argon2Params are the Argon2id cost parameters of a Passphrase KEK. They are
// stored in the parameters file with the salt, so files written with older
// parameters keep opening after the defaults change.
type Argon2Params struct {
	// MemoryKiB is the memory cost in KiB (at least 8192).
	MemoryKiB uint32 `json:"memory_kib"`
	// Time is the number of passes over the memory (at least 1).
	Time uint32 `json:"time"`
	// Threads is the degree of parallelism (at least 1).
	Threads uint8 `json:"threads"`
}

// DefaultArgon2Params returns the parameters CreatePassphraseFile callers
// should use: 64 MiB of memory, 3 passes, 2 threads (about 0.2 s on one
// modern core; RFC 9106 §7.4 recommends at least 64 MiB when memory allows).
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{MemoryKiB: 64 << 10, Time: 3, Threads: 2}
}

// Bounds on parameters accepted from a file: enough to stay memory-hard,
// small enough that a corrupt file cannot exhaust the machine.
const (
	minMemoryKiB = 8 << 10
	maxMemoryKiB = 4 << 20
	maxTime      = 64
	saltSize     = 16
)

func (p Argon2Params) validate() error {
	if p.MemoryKiB < minMemoryKiB || p.MemoryKiB > maxMemoryKiB || p.Time < 1 || p.Time > maxTime || p.Threads < 1 {
		return fmt.Errorf("%w: Argon2id parameters memory=%d KiB time=%d threads=%d outside %d..%d KiB, 1..%d, >=1",
			ErrInvalidKey, p.MemoryKiB, p.Time, p.Threads, minMemoryKiB, maxMemoryKiB, maxTime)
	}
	return nil
}

// passphraseFile is the JSON parameters file of a Passphrase KEK.
type passphraseFile struct {
	Version int    `json:"version"`
	KDF     string `json:"kdf"`
	Salt    []byte `json:"salt"` // base64
	Argon2Params
	// Check is HMAC-SHA256(key, "kura passphrase check v1"): it tells a wrong
	// passphrase from a right one at open time. It helps an offline guesser
	// no more than any wrapped key in the store would.
	Check []byte `json:"check"`
}

const passphraseKDF = "argon2id"

// Passphrase is a KEK derived with Argon2id from a passphrase and a salt. The
// salt, the Argon2id parameters and a check value live in a JSON parameters
// file (not secret, written with mode 0600):
//
//	{"version":1,"kdf":"argon2id","salt":"<base64, 16 bytes>",
//	 "memory_kib":65536,"time":3,"threads":2,"check":"<base64>"}
//
// Its ID is "passphrase:" followed by the first 16 hex digits of
// SHA-256("kura passphrase id v1\x00" || salt). Rotating the passphrase means
// a new parameters file, hence a new salt and a new ID.
type Passphrase struct {
	k gcmKEK
}

// CreatePassphraseFile derives a KEK from passphrase with a new random salt
// and params, and writes the parameters file to path, which must not exist.
// The caller reads the passphrase from a file or an environment variable and
// should clear it afterwards.
func CreatePassphraseFile(path string, passphrase []byte, params Argon2Params) (*Passphrase, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		return nil, fmt.Errorf("kek: generate salt: %w", err)
	}
	k, check, err := derivePassphrase(passphrase, salt, params)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(passphraseFile{Version: 1, KDF: passphraseKDF, Salt: salt, Argon2Params: params, Check: check})
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	if err := writeNewFile(path, append(data, '\n')); err != nil {
		return nil, err
	}
	return k, nil
}

// OpenPassphraseFile reads the parameters file at path and derives the KEK
// from passphrase. It returns an error wrapping ErrWrongPassphrase when the
// passphrase does not match, ErrInvalidKey when the file is malformed, and
// ErrInsecureFile when group or others have any access to it: its check
// value would let them test passphrase guesses offline.
func OpenPassphraseFile(path string, passphrase []byte) (*Passphrase, error) {
	data, err := keyfile.ReadSecret(path)
	if errors.Is(err, keyfile.ErrInsecure) {
		return nil, fmt.Errorf("%w: %w", ErrInsecureFile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	var pf passphraseFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidKey, path, err)
	}
	if pf.Version != 1 || pf.KDF != passphraseKDF || len(pf.Salt) != saltSize || len(pf.Check) != sha256.Size {
		return nil, fmt.Errorf("%w: %s is not a version 1 argon2id parameters file", ErrInvalidKey, path)
	}
	if err := pf.Argon2Params.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k, check, err := derivePassphrase(passphrase, pf.Salt, pf.Argon2Params)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(check, pf.Check) {
		return nil, fmt.Errorf("%w for %s", ErrWrongPassphrase, path)
	}
	return k, nil
}

func derivePassphrase(passphrase, salt []byte, p Argon2Params) (*Passphrase, []byte, error) {
	if len(passphrase) == 0 {
		return nil, nil, fmt.Errorf("%w: empty passphrase", ErrInvalidKey)
	}
	key := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, keySize)
	defer clear(key)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("kura passphrase check v1"))
	check := mac.Sum(nil)
	h := sha256.New()
	h.Write([]byte("kura passphrase id v1\x00"))
	h.Write(salt)
	k, err := newGCMKEK("passphrase:"+hex.EncodeToString(h.Sum(nil)[:8]), key)
	if err != nil {
		return nil, nil, err
	}
	return &Passphrase{k: k}, check, nil
}

// ID returns the KEK's identifier, "passphrase:<16 hex digits>".
func (k *Passphrase) ID() string { return k.k.id }

// Wrap encrypts dek under the derived key with AES-256-GCM, binding aad.
func (k *Passphrase) Wrap(ctx context.Context, dek, aad []byte) ([]byte, error) {
	return k.k.wrap(ctx, dek, aad)
}

// Unwrap decrypts a key wrapped by Wrap with the same aad; any failure
// returns ErrUnwrap.
func (k *Passphrase) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	return k.k.unwrap(ctx, wrapped, aad)
}

// String returns REDACTED.
func (Passphrase) String() string { return redacted }

// GoString returns REDACTED.
func (Passphrase) GoString() string { return redacted }

// Format prints REDACTED for every verb.
func (Passphrase) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue logs the KEK as REDACTED.
func (Passphrase) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON encodes the KEK as the string "REDACTED".
func (Passphrase) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText encodes the KEK as REDACTED.
func (Passphrase) MarshalText() ([]byte, error) { return []byte(redacted), nil }
