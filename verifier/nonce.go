package verifier

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/store"
)

// NonceSize is the size of the nonces the service issues.
const NonceSize = 32

// DefaultMaxNonces is Config.MaxNonces's default: with nonces living five
// minutes, about 33,000 nonces a second, sustained, in 1.2 MiB.
const DefaultMaxNonces = 10_000_000

// ErrTooManyNonces means the nonce store is full; clients should retry
// later (fault.Busy: 503 "busy").
var ErrTooManyNonces = fault.New(nil, fault.Busy, "too many outstanding nonces")

// nonceSource issues nonces and consumes them once.
type nonceSource interface {
	issue(ctx context.Context) ([]byte, time.Time, error)
	// take consumes a nonce: it must have been issued, be unexpired and
	// unused; otherwise the error wraps attestation.ErrNonce.
	take(ctx context.Context, v []byte) error
}

func checkNonceSize(v []byte) error {
	if len(v) != NonceSize {
		return fmt.Errorf("%w: nonce is %d bytes; this verifier issues %d-byte nonces", attestation.ErrNonce, len(v), NonceSize)
	}
	return nil
}

// storeNonces holds issued, unused nonces until they expire, as records
// "nonce/<hex>" of an ephemeral store shared by every replica through the
// database: issue adds one, take removes it, atomically, on whichever
// replica it reaches (docs/spec/attestation.md §8.1).
type storeNonces struct {
	ttl time.Duration
	now func() time.Time
	eph NonceStore
}

func nonceKey(v []byte) string { return "nonce/" + hex.EncodeToString(v) }

func (n *storeNonces) issue(ctx context.Context) ([]byte, time.Time, error) {
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

func (n *storeNonces) take(ctx context.Context, v []byte) error {
	if err := checkNonceSize(v); err != nil {
		return err
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

// A memory nonce (docs/spec/attestation.md §8.1) is
//
//	serial (8 bytes, big endian) ‖ expiry (8, Unix seconds, big endian) ‖ tag (16)
//
// where tag is the first 16 bytes of HMAC-SHA256 under the process's
// nonce key of nonceMACLabel ‖ serial ‖ expiry. The key is random, made
// when the Service is, and never leaves memory. Issuing a nonce stores
// nothing but a counter; taking one checks the tag (so only this process
// can have issued it), the expiry, and sets the serial's bit in a bitmap
// of the serials issued within the last TTL, which must have been clear.
const (
	nonceMACLabel = "kura verifier nonce v1\x00"
	nonceTagSize  = 16
	// segmentSerials is the number of serials one bitmap segment covers.
	segmentSerials = 1 << 14
)

// memoryNonces issues authenticated nonces and remembers which it has
// seen used, one bit each, for one process.
type memoryNonces struct {
	ttl  time.Duration
	now  func() time.Time
	max  uint64
	macs sync.Pool // of hash.Hash: HMAC-SHA256 under the nonce key

	mu sync.Mutex
	// next is the next serial to issue; base the first serial of segs[0].
	// Every serial in [base, next) was issued; those below base were in
	// segments dropped once all their nonces had expired.
	next, base uint64
	segs       []*nonceSegment
}

// nonceSegment records which of segmentSerials consecutive serials have
// been used, and when the last of their nonces expires.
type nonceSegment struct {
	used    [segmentSerials / 64]uint64
	expires int64 // Unix seconds
}

func newMemoryNonces(ttl time.Duration, now func() time.Time, max int) *memoryNonces {
	key := make([]byte, sha256.Size)
	rand.Read(key)
	n := &memoryNonces{ttl: ttl, now: now, max: uint64(max)}
	n.macs.New = func() any { return hmac.New(sha256.New, key) }
	// Serials start at a random segment, so that they tell little about
	// how many nonces this process issued.
	var start [4]byte
	rand.Read(start[:])
	n.next = uint64(binary.BigEndian.Uint32(start[:])) * segmentSerials
	n.base = n.next
	return n
}

// tag computes a nonce's tag into its last nonceTagSize bytes.
func (n *memoryNonces) tag(v []byte) []byte {
	m := n.macs.Get().(hash.Hash)
	defer n.macs.Put(m)
	m.Reset()
	m.Write([]byte(nonceMACLabel))
	m.Write(v[:16])
	var sum [sha256.Size]byte
	return m.Sum(sum[:0])[:nonceTagSize]
}

func (n *memoryNonces) issue(context.Context) ([]byte, time.Time, error) {
	now := n.now()
	exp := now.Add(n.ttl).Truncate(time.Second)
	n.mu.Lock()
	n.dropExpired(now.Unix())
	if n.next-n.base >= n.max {
		n.mu.Unlock()
		return nil, time.Time{}, fmt.Errorf("%w: %d nonces issued in the last %s", ErrTooManyNonces, n.max, n.ttl)
	}
	serial := n.next
	n.next++
	i := (serial - n.base) / segmentSerials
	if i == uint64(len(n.segs)) {
		n.segs = append(n.segs, &nonceSegment{})
	}
	n.segs[i].expires = max(n.segs[i].expires, exp.Unix())
	n.mu.Unlock()

	v := make([]byte, NonceSize)
	binary.BigEndian.PutUint64(v[0:8], serial)
	binary.BigEndian.PutUint64(v[8:16], uint64(exp.Unix()))
	copy(v[16:], n.tag(v))
	return v, exp, nil
}

// dropExpired drops the leading segments whose serials were all issued
// and whose nonces have all expired.
func (n *memoryNonces) dropExpired(now int64) {
	k := 0
	for k < len(n.segs) && n.segs[k].expires <= now && n.base+uint64(k+1)*segmentSerials <= n.next {
		k++
	}
	if k > 0 {
		clear(n.segs[:k])
		n.segs = n.segs[k:]
		n.base += uint64(k) * segmentSerials
	}
}

func (n *memoryNonces) take(_ context.Context, v []byte) error {
	if err := checkNonceSize(v); err != nil {
		return err
	}
	if !hmac.Equal(n.tag(v), v[16:]) {
		return fmt.Errorf("%w: nonce %s… was not issued by this verifier (a nonce of another verifier, of this one before a restart, or altered); request a new one from POST /v1/attestation/nonce",
			attestation.ErrNonce, hex.EncodeToString(v[:4]))
	}
	serial, exp := binary.BigEndian.Uint64(v[0:8]), int64(binary.BigEndian.Uint64(v[8:16]))
	now := n.now()
	if now.Unix() >= exp {
		return fmt.Errorf("%w: nonce expired at %s (nonces live %s); request a new one", attestation.ErrNonce, time.Unix(exp, 0).UTC().Format(time.RFC3339), n.ttl)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if serial < n.base || serial >= n.next {
		// Only an expired nonce can be below base; the tag rules out
		// serials not yet issued.
		return fmt.Errorf("%w: nonce expired (nonces live %s); request a new one", attestation.ErrNonce, n.ttl)
	}
	off := serial - n.base
	seg := n.segs[off/segmentSerials]
	word, bit := &seg.used[off%segmentSerials/64], uint64(1)<<(off%64)
	if *word&bit != 0 {
		return fmt.Errorf("%w: nonce %s… was already used; request a new one", attestation.ErrNonce, hex.EncodeToString(v[:4]))
	}
	*word |= bit
	return nil
}
