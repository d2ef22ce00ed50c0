package verifier

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// NonceSize is the size of the nonces the service issues.
const NonceSize = 32

// ErrTooManyNonces means the nonce store is full; clients should retry later.
var ErrTooManyNonces = errors.New("too many outstanding nonces")

// nonces holds issued, unused nonces until they expire.
type nonces struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu     sync.Mutex
	issued map[[NonceSize]byte]time.Time // nonce -> expiry
}

func (n *nonces) issue() ([]byte, time.Time, error) {
	var v [NonceSize]byte
	rand.Read(v[:])
	now := n.now()
	exp := now.Add(n.ttl)
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.issued) >= n.max {
		for k, e := range n.issued {
			if now.After(e) {
				delete(n.issued, k)
			}
		}
		if len(n.issued) >= n.max {
			return nil, time.Time{}, ErrTooManyNonces
		}
	}
	n.issued[v] = exp
	return v[:], exp, nil
}

// take consumes a nonce: it must have been issued, be unexpired and unused.
func (n *nonces) take(v []byte) error {
	if len(v) != NonceSize {
		return fmt.Errorf("%w: nonce is %d bytes; this verifier issues %d-byte nonces", attestation.ErrNonce, len(v), NonceSize)
	}
	k := [NonceSize]byte(v)
	n.mu.Lock()
	exp, ok := n.issued[k]
	delete(n.issued, k)
	n.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("%w: nonce %s… was not issued by this verifier or was already used", attestation.ErrNonce, hex.EncodeToString(v[:4]))
	case n.now().After(exp):
		return fmt.Errorf("%w: nonce expired at %s; request a new one", attestation.ErrNonce, exp.UTC().Format(time.RFC3339))
	}
	return nil
}
