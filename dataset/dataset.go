// Package dataset seals datasets: it encrypts a file (Parquet, in kura) into
// the kura sealed-dataset envelope and opens it again. The format is
// specified in docs/spec/dataset.md.
//
// Security model. A 32-byte data key, generated on the owner's machine,
// protects any number of files. Each file has a random 32-byte salt; the
// chunk key and the header MAC key are derived from the data key and the salt
// with HKDF-SHA256, so files never share an AES key. The plaintext is cut into
// fixed-size chunks, each sealed with AES-256-GCM under the STREAM
// construction: the nonce is the chunk's index and a last-chunk flag, and the
// associated data is the SHA-256 of the encoded header. Truncation,
// reordering, chunk swapping between files, header tampering and appended
// data are therefore all detected. The header carries a key id, a public
// HKDF fingerprint of the data key that also commits to it, so a wrong key is
// reported as such before any decryption.
//
// Opening never releases plaintext of a chunk that did not authenticate.
// Streaming Open writes each chunk after it authenticated, so a failure can
// leave a prefix of the plaintext in dst; OpenFile is all or nothing.
package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrDataset is the family of this package's sentinels: every one below
// wraps it and carries its kind of failure (internal/fault).
var ErrDataset = errors.New("dataset failed")

// Sentinel errors. Every failure to authenticate wraps ErrAuth.
var (
	// ErrAuth is the family of authentication failures: ErrTampered,
	// ErrTruncated and ErrWrongKey all wrap it.
	ErrAuth = fault.New(ErrDataset, fault.Tampered, "dataset authentication failed")
	// ErrTampered: the header or a chunk was modified, chunks were reordered
	// or swapped in from another file, or data was appended.
	ErrTampered = fault.New(ErrAuth, fault.Tampered, "dataset authentication failed: sealed dataset was modified")
	// ErrTruncated: the sealed dataset ends before its final chunk.
	ErrTruncated = fault.New(ErrAuth, fault.Tampered, "dataset authentication failed: sealed dataset is truncated")
	// ErrWrongKey: the key's id is not the one the header names.
	ErrWrongKey = fault.New(ErrAuth, fault.WrongKey, "dataset authentication failed: wrong data key")
	// ErrMalformedHeader: the input is not a well-formed sealed-dataset
	// header. Its kind is Tampered: a sealed file whose header does not
	// parse is damaged (docs/spec/dataset.md §6).
	ErrMalformedHeader = fault.New(ErrDataset, fault.Tampered, "malformed sealed-dataset header")
	// ErrUnsupportedVersion: the header's format version is not one this
	// implementation reads. Its kind is Tampered, as ErrMalformedHeader's:
	// the version is read before anything authenticates it, so a reader
	// cannot tell a later version from a damaged one, and either way it
	// can read nothing of the file (docs/spec/dataset.md §6).
	ErrUnsupportedVersion = fault.New(ErrDataset, fault.Tampered, "unsupported sealed-dataset version")
	// ErrInvalidKey: a key, or a key file, is malformed or unsafe.
	ErrInvalidKey = fault.New(ErrDataset, fault.WrongKey, "invalid data key")
	// ErrSourceChanged: the file being sealed changed size while it was read.
	ErrSourceChanged = fault.New(ErrDataset, fault.Conflict, "source changed while sealing")
)

// Format constants (docs/spec/dataset.md §2).
const (
	// Version is the envelope format version this package writes and reads.
	Version = 1
	// KeySize is the size of a data key in bytes.
	KeySize = 32
	// SaltSize is the size of the per-file salt.
	SaltSize = 32
	// TagSize is the AES-GCM tag appended to every chunk.
	TagSize = 16
	// DefaultChunkSize is the plaintext bytes per chunk when Header.ChunkSize
	// is zero. 1 MiB makes the per-chunk costs (nonce, HKDF-free GCM setup,
	// channel hand-off, one write) negligible next to AES-GCM over the chunk,
	// keeps the 16-byte tag overhead at 0.0015 %, and bounds memory to a few
	// MiB per worker; random access reads at most one chunk too much.
	DefaultChunkSize = 1 << 20
	// MinChunkSize and MaxChunkSize bound Header.ChunkSize.
	MinChunkSize = 16
	MaxChunkSize = 64 << 20
	// MaxHeaderSize bounds the encoded header, schema included.
	MaxHeaderSize = 1 << 20
)

// FileSHA256 returns the hex SHA-256 and the size of the file at path: for
// a sealed dataset, the digest a manifest names it by.
func FileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
