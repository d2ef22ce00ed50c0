package store

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MemoryEphemeral is an Ephemeral in process memory: the default of a
// verifier or key broker that shares no database, right for one process.
type MemoryEphemeral struct {
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]memoryRecord
}

type memoryRecord struct {
	value   []byte
	expires time.Time
}

var _ Ephemeral = (*MemoryEphemeral)(nil)

// NewMemoryEphemeral returns an empty MemoryEphemeral holding at most max
// live records (zero: DefaultMaxEphemeral) on the clock now (nil:
// time.Now).
func NewMemoryEphemeral(max int, now func() time.Time) *MemoryEphemeral {
	if max <= 0 {
		max = DefaultMaxEphemeral
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryEphemeral{max: max, now: now, m: map[string]memoryRecord{}}
}

// ValidText reports whether s is 1..max bytes of UTF-8 without NUL, as
// collaboration ids and ephemeral keys must be.
func ValidText(s string, max int) bool {
	return s != "" && len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// CheckCollaborationID validates a collaboration id as every backend does.
func CheckCollaborationID(id string) error {
	if !ValidText(id, MaxCollaborationIDSize) {
		return fmt.Errorf("%w: collaboration id must be 1..%d bytes of UTF-8 without NUL", ErrInvalid, MaxCollaborationIDSize)
	}
	return nil
}

// CheckCollaboration validates a PutCollaboration call as every backend
// does.
func CheckCollaboration(id string, file []byte, version int64) error {
	if err := CheckCollaborationID(id); err != nil {
		return err
	}
	switch {
	case len(file) == 0 || len(file) > MaxCollaborationSize:
		return fmt.Errorf("%w: collaboration file is %d bytes, want 1..%d", ErrInvalid, len(file), MaxCollaborationSize)
	case version < 1:
		return fmt.Errorf("%w: collaboration version %d; versions start at 1", ErrInvalid, version)
	}
	return nil
}

// CheckEphemeral validates an ephemeral write as every backend does.
func CheckEphemeral(key string, value []byte, expires, now time.Time) error {
	switch {
	case !ValidText(key, MaxEphemeralKeySize):
		return fmt.Errorf("%w: ephemeral key must be 1..%d bytes of UTF-8 without NUL", ErrInvalid, MaxEphemeralKeySize)
	case len(value) > MaxEphemeralValueSize:
		return fmt.Errorf("%w: ephemeral value of %d bytes; the limit is %d", ErrInvalid, len(value), MaxEphemeralValueSize)
	case !expires.After(now):
		return fmt.Errorf("%w: ephemeral record would expire at %s, not after now", ErrInvalid, expires.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Add implements Ephemeral.
func (e *MemoryEphemeral) Add(_ context.Context, key string, value []byte, expires time.Time) (bool, error) {
	now := e.now()
	if err := CheckEphemeral(key, value, expires, now); err != nil {
		return false, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.m[key]; ok && r.expires.After(now) {
		return false, nil
	}
	if len(e.m) >= e.max {
		for k, r := range e.m {
			if !r.expires.After(now) {
				delete(e.m, k)
			}
		}
		if len(e.m) >= e.max {
			return false, fmt.Errorf("%w: %d live records", ErrFull, len(e.m))
		}
	}
	e.m[key] = memoryRecord{value: bytes.Clone(value), expires: expires}
	return true, nil
}

// Get implements Ephemeral.
func (e *MemoryEphemeral) Get(_ context.Context, key string) ([]byte, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.m[key]
	if !ok || !r.expires.After(e.now()) {
		return nil, false, nil
	}
	return bytes.Clone(r.value), true, nil
}

// Take implements Ephemeral.
func (e *MemoryEphemeral) Take(_ context.Context, key string) ([]byte, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.m[key]
	if !ok {
		return nil, false, nil
	}
	delete(e.m, key)
	if !r.expires.After(e.now()) {
		return nil, false, nil
	}
	return r.value, true, nil
}
