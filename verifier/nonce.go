package verifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/store"
)

// NonceSize is the size of the nonces the service issues.
const NonceSize = 32

// ErrTooManyNonces means the nonce store is full; clients should retry
// later (fault.Busy: 503 "busy").
var ErrTooManyNonces = fault.New(nil, fault.Busy, "too many outstanding nonces")

// nonces holds issued, unused nonces until they expire, as records
// "nonce/<hex>" of an ephemeral store: in memory, or shared by every
// replica through the database.
type nonces struct {
	ttl time.Duration
	now func() time.Time
	eph NonceStore
}

func nonceKey(v []byte) string { return "nonce/" + hex.EncodeToString(v) }

func (n *nonces) issue(ctx context.Context) ([]byte, time.Time, error) {
	v := make([]byte, NonceSize)
	rand.Read(v)
	exp := n.now().Add(n.ttl)
	ok, err := n.eph.Add(ctx, nonceKey(v), nil, exp)
	switch {
	case errors.Is(err, store.ErrFull):
		return nil, time.Time{}, fmt.Errorf("%w: %w", ErrTooManyNonces, err)
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("verifier: issue nonce: %w", err)
	case !ok:
		return nil, time.Time{}, errors.New("verifier: issue nonce: a fresh random nonce is already issued")
	}
	return v, exp, nil
}

// take consumes a nonce: it must have been issued, be unexpired and unused.
func (n *nonces) take(ctx context.Context, v []byte) error {
	if len(v) != NonceSize {
		return fmt.Errorf("%w: nonce is %d bytes; this verifier issues %d-byte nonces", attestation.ErrNonce, len(v), NonceSize)
	}
	_, ok, err := n.eph.Take(ctx, nonceKey(v))
	if err != nil {
		return fmt.Errorf("verifier: consume nonce: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: nonce %s… was not issued by this verifier, has expired (nonces live %s) or was already used; request a new one", attestation.ErrNonce, hex.EncodeToString(v[:4]), n.ttl)
	}
	return nil
}
