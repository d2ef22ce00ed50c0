// Package keyfile reads the files that hold keys and trust: secrets (private
// keys, KEKs, passphrases, TLS keys) that nobody but their owner may read or
// write, and trust lists (authorized keys) that nobody but their owner may
// write. A file others can reach is refused, naming the file and the chmod
// that fixes it, before a byte of it is used.
package keyfile

import (
	"fmt"
	"io"
	"os"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrInsecure means a key or trust file is open to others, or is not a
// regular file (CLI exit 7).
var ErrInsecure = fault.New(nil, fault.WrongKey, "key file permissions too open")

// MaxSize bounds what ReadSecret and ReadTrusted read.
const MaxSize = 1 << 20

// CheckSecret returns an error wrapping ErrInsecure unless path is a
// regular file that group and others can neither read nor write (nor
// execute). The error names the file and the chmod that fixes it; its text
// leaves out ErrInsecure's own, so that a package can wrap it in a sentinel
// of its own ("%w: %w") without saying the same thing twice.
func CheckSecret(path string) error {
	return check(path, 0o077, "group or others may read or write it; run chmod 600")
}

// CheckTrusted returns an error wrapping ErrInsecure unless path is a
// regular file that group and others cannot write. The error is like
// CheckSecret's.
func CheckTrusted(path string) error {
	return check(path, 0o022, "group or others may write it; run chmod 644")
}

// ReadSecret checks path with CheckSecret and returns its contents (at most
// MaxSize bytes).
func ReadSecret(path string) ([]byte, error) { return read(path, CheckSecret) }

// ReadTrusted checks path with CheckTrusted and returns its contents (at
// most MaxSize bytes).
func ReadTrusted(path string) ([]byte, error) { return read(path, CheckTrusted) }

// insecureError is ErrInsecure with the file and its fix.
type insecureError struct{ msg string }

func (e *insecureError) Error() string { return e.msg }

// Unwrap returns ErrInsecure, which carries the kind.
func (e *insecureError) Unwrap() error { return ErrInsecure }

func check(path string, forbidden os.FileMode, fix string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &insecureError{path + " is not a regular file"}
	}
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		return &insecureError{fmt.Sprintf("%s has mode %04o: %s %s", path, perm, fix, path)}
	}
	return nil
}

func read(path string, check func(string) error) ([]byte, error) {
	if err := check(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		clear(data)
		return nil, fmt.Errorf("%w: %s is larger than a key file can be", fault.WrongKey, path)
	}
	return data, nil
}
