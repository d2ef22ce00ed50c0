package blob

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/kura-cc/kura/internal/fault"
)

// Store holds objects under keys. Implementations are safe for concurrent
// use. Every method refuses an invalid key (see CheckKey) with an error
// wrapping ErrInvalidKey.
type Store interface {
	// Put stores the bytes read from r under key, replacing any existing
	// object atomically. size is the exact number of bytes r yields, or -1
	// when it is unknown; a reader that yields a different number of bytes
	// fails the Put with an error wrapping ErrSizeMismatch. Put reads r
	// until io.EOF and does not close it. When Put returns an error the
	// previous object, if any, is still in place.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// Get opens the object stored under key for reading. It returns an
	// error wrapping ErrNotFound when there is none. Reads from the
	// returned ReadCloser fail once ctx is done; the caller must close it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// Stat describes the object stored under key without reading it. It
	// returns an error wrapping ErrNotFound when there is none.
	Stat(ctx context.Context, key string) (Info, error)

	// Delete removes the object stored under key. Deleting a key that
	// holds no object is not an error, so a Delete can be retried.
	Delete(ctx context.Context, key string) error

	// List describes every object whose key starts with prefix, sorted by
	// key in byte order. prefix is matched byte-wise, not by segment:
	// "results/a" matches "results/a/x" and "results/ab". An empty prefix
	// lists the whole store; any other prefix must pass CheckPrefix.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// Info describes a stored object.
type Info struct {
	// Key is the object's key.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ModTime is when the object was last written, as the store reports
	// it (S3 stores round it to the second).
	ModTime time.Time
}

// ErrBlob is the family of this package's sentinels: every sentinel of this package and of its backends wraps
// it and carries its kind of failure (internal/fault).
var ErrBlob = errors.New("blob store failed")

// ErrNotFound is returned (wrapped) by Get and Stat when no object is stored
// under the key.
var ErrNotFound = fault.New(ErrBlob, fault.NotFound, "blob: object not found")

// ErrInvalidKey is returned (wrapped) for a key or prefix that CheckKey or
// CheckPrefix refuses.
var ErrInvalidKey = fault.New(ErrBlob, fault.Invalid, "blob: invalid key")

// ErrSizeMismatch is returned (wrapped) by Put when the reader yields more
// or fewer bytes than the size it was given.
var ErrSizeMismatch = fault.New(ErrBlob, fault.Invalid, "blob: size mismatch")
