// Package keyfile reads the files that hold keys and trust: secrets (private
// keys, KEKs, passphrases, TLS keys) that nobody but their owner may read or
// write, and trust lists (authorized keys) that nobody but their owner may
// write. A file others can reach is refused, naming the file and the chmod
// that fixes it, before a byte of it is used.
package keyfile

import (
	"errors"
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
// execute). The error says how to fix it.
func CheckSecret(path string) error { return check(path, 0o077, "600") }

// CheckTrusted returns an error wrapping ErrInsecure unless path is a
// regular file that group and others cannot write.
func CheckTrusted(path string) error { return check(path, 0o022, "644") }

// ReadSecret checks path with CheckSecret and returns its contents (at most
// MaxSize bytes).
func ReadSecret(path string) ([]byte, error) { return read(path, CheckSecret) }

// ReadTrusted checks path with CheckTrusted and returns its contents (at
// most MaxSize bytes).
func ReadTrusted(path string) ([]byte, error) { return read(path, CheckTrusted) }

func check(path string, forbidden os.FileMode, mode string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrInsecure, path)
	}
	if perm := fi.Mode().Perm(); perm&forbidden != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run chmod %s %s", ErrInsecure, path, perm, mode, path)
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
		return nil, errors.New(path + ": larger than a key file can be")
	}
	return data, nil
}
