package kek

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// Keyring is a set of KEKs by ID with one current KEK used for wrapping. A
// wrapped key is stored with the ID of the KEK that wrapped it, and Unwrap
// dispatches on that ID. Rotation: Add the new KEK, SetCurrent to it, Rewrap
// every stored key (skipping those already under the current KEK), then
// Remove the old KEK once nothing refers to it. A Keyring is safe for
// concurrent use.
type Keyring struct {
	mu      sync.RWMutex
	keks    map[string]KEK
	current string
}

// NewKeyring returns a keyring whose current KEK is current and which can
// also unwrap with others.
func NewKeyring(current KEK, others ...KEK) (*Keyring, error) {
	r := &Keyring{keks: make(map[string]KEK), current: current.ID()}
	for _, k := range append([]KEK{current}, others...) {
		if err := r.Add(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Add adds k for unwrapping. It returns an error wrapping ErrDuplicateKEK if
// a KEK with the same ID is already present.
func (r *Keyring) Add(k KEK) error {
	id := k.ID()
	if id == "" {
		return fmt.Errorf("%w: empty KEK id", ErrInvalidKey)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keks[id]; ok {
		return fmt.Errorf("%w: %s", ErrDuplicateKEK, id)
	}
	r.keks[id] = k
	return nil
}

// SetCurrent makes the KEK with the given ID the one Wrap uses.
func (r *Keyring) SetCurrent(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keks[id]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownKEK, id)
	}
	r.current = id
	return nil
}

// Remove retires the KEK with the given ID; keys still wrapped under it can
// no longer be unwrapped through this keyring. The current KEK cannot be
// removed (ErrCurrentKEK).
func (r *Keyring) Remove(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == r.current {
		return fmt.Errorf("%w: %s", ErrCurrentKEK, id)
	}
	if _, ok := r.keks[id]; !ok {
		return fmt.Errorf("%w: %s", ErrUnknownKEK, id)
	}
	delete(r.keks, id)
	return nil
}

// CurrentID returns the ID of the current KEK.
func (r *Keyring) CurrentID() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// IDs returns the IDs of all KEKs in the keyring, sorted.
func (r *Keyring) IDs() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	ids := make([]string, 0, len(r.keks))
	for id := range r.keks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Wrap wraps dek with the current KEK and returns the wrapped key with the
// ID to store next to it.
func (r *Keyring) Wrap(ctx context.Context, dek, aad []byte) (wrapped []byte, kekID string, err error) {
	r.mu.RLock()
	k := r.keks[r.current]
	r.mu.RUnlock()
	wrapped, err = k.Wrap(ctx, dek, aad)
	if err != nil {
		return nil, "", err
	}
	return wrapped, k.ID(), nil
}

// Unwrap unwraps a key wrapped by the KEK with ID kekID. It returns an error
// wrapping ErrUnknownKEK if no such KEK is in the keyring, and ErrUnwrap (from
// the KEK) if the key does not open.
func (r *Keyring) Unwrap(ctx context.Context, kekID string, wrapped, aad []byte) ([]byte, error) {
	r.mu.RLock()
	k, ok := r.keks[kekID]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKEK, kekID)
	}
	return k.Unwrap(ctx, wrapped, aad)
}

// Rewrap re-wraps a key wrapped by the KEK kekID under the current KEK. If
// kekID already is the current KEK it returns wrapped and kekID unchanged,
// which is what a store's Rewrap takes as "nothing to do".
func (r *Keyring) Rewrap(ctx context.Context, kekID string, wrapped, aad []byte) (newWrapped []byte, newKEKID string, err error) {
	if kekID == r.CurrentID() {
		return wrapped, kekID, nil
	}
	dek, err := r.Unwrap(ctx, kekID, wrapped, aad)
	if err != nil {
		return nil, "", err
	}
	defer clear(dek)
	return r.Wrap(ctx, dek, aad)
}

// String lists the KEK IDs and marks the current one; it never prints keys.
func (r *Keyring) String() string {
	ids := r.IDs()
	cur := r.CurrentID()
	for i, id := range ids {
		if id == cur {
			ids[i] = id + " (current)"
		}
	}
	return "kek.Keyring[" + strings.Join(ids, ", ") + "]"
}

// Format prints what String returns, for every verb.
func (r *Keyring) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

// LogValue logs the KEK IDs, never keys.
func (r *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", r.CurrentID()), slog.Any("ids", r.IDs()))
}
