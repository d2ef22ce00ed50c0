package verifier

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/store"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func issue(t *testing.T, n nonceSource) []byte {
	t.Helper()
	v, _, err := n.issue(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantNonceErr checks that err is an ErrNonce whose message says why.
func wantNonceErr(t *testing.T, what string, err error, says string) {
	t.Helper()
	if !errors.Is(err, attestation.ErrNonce) || !strings.Contains(err.Error(), says) {
		t.Errorf("%s: %v, want ErrNonce saying %q", what, err, says)
	}
}

// TestMemoryNonces: a nonce is accepted once, until it expires, only by
// the nonce source that issued it, and only as issued.
func TestMemoryNonces(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	n := newMemoryNonces(5*time.Minute, clock.now, 1000)

	v, exp, err := n.issue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != NonceSize || exp.After(clock.now().Add(5*time.Minute)) || !exp.After(clock.now().Add(4*time.Minute)) {
		t.Fatalf("nonce %x expiring %s", v, exp)
	}
	if err := n.take(ctx, v); err != nil {
		t.Fatalf("first use: %v", err)
	}
	wantNonceErr(t, "second use", n.take(ctx, v), "already used")

	other := newMemoryNonces(5*time.Minute, clock.now, 1000)
	wantNonceErr(t, "another verifier's nonce", other.take(ctx, issue(t, n)), "not issued by this verifier")

	for i := range NonceSize {
		tampered := issue(t, n)
		tampered[i] ^= 0x01
		wantNonceErr(t, fmt.Sprintf("byte %d altered", i), n.take(ctx, tampered), "not issued by this verifier")
	}
	// A nonce that claims a later expiry, or an unissued serial, needs a
	// tag the key alone makes.
	forged := issue(t, n)
	binary.BigEndian.PutUint64(forged[8:16], uint64(clock.now().Add(24*time.Hour).Unix()))
	wantNonceErr(t, "extended expiry", n.take(ctx, forged), "not issued by this verifier")
	forged = issue(t, n)
	binary.BigEndian.PutUint64(forged[0:8], binary.BigEndian.Uint64(forged[0:8])+1)
	wantNonceErr(t, "next serial", n.take(ctx, forged), "not issued by this verifier")

	good := issue(t, n)
	for _, bad := range [][]byte{nil, {}, good[:NonceSize-1], good[:16], append(bytes.Clone(good), 0), bytes.Repeat(good, 2)} {
		wantNonceErr(t, fmt.Sprintf("nonce of %d bytes", len(bad)), n.take(ctx, bad), "bytes")
	}
	if err := n.take(ctx, good); err != nil {
		t.Errorf("nonce refused after its truncations were: %v", err)
	}

	late := issue(t, n)
	clock.add(5 * time.Minute)
	wantNonceErr(t, "expired nonce", n.take(ctx, late), "expired")
	// Once expired segments are dropped (on the next issue), an expired
	// nonce is still refused.
	issue(t, n)
	wantNonceErr(t, "expired nonce, segment dropped", n.take(ctx, late), "expired")
}

// TestMemoryNoncesBounded: beyond MaxNonces issued within the TTL,
// issuing fails with ErrTooManyNonces until they expire.
func TestMemoryNoncesBounded(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	const max = 3 * segmentSerials / 2
	n := newMemoryNonces(time.Minute, clock.now, max)
	var first []byte
	for i := 0; ; i++ {
		v, _, err := n.issue(ctx)
		if errors.Is(err, ErrTooManyNonces) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = v
		}
		if i > max {
			t.Fatalf("%d nonces issued, bound %d", i, max)
		}
	}
	clock.add(2 * time.Minute)
	v := issue(t, n)
	if err := n.take(ctx, v); err != nil {
		t.Errorf("a nonce issued after the others expired: %v", err)
	}
	wantNonceErr(t, "expired nonce", n.take(ctx, first), "expired")
	if got := len(n.segs); got > 2 {
		t.Errorf("%d bitmap segments kept after every earlier nonce expired", got)
	}
}

// TestMemoryNoncesConcurrent: of concurrent takes of one nonce exactly one
// succeeds, and nonces issued and taken concurrently are each accepted
// once (run with -race).
func TestMemoryNoncesConcurrent(t *testing.T) {
	ctx := context.Background()
	n := newMemoryNonces(time.Minute, time.Now, DefaultMaxNonces)
	const workers, each = 8, 2 * segmentSerials / 8
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				v, _, err := n.issue(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				var taken atomic.Int64
				var both sync.WaitGroup
				for range 2 {
					both.Go(func() {
						if n.take(ctx, v) == nil {
							taken.Add(1)
						}
					})
				}
				both.Wait()
				ok.Add(taken.Load())
				if taken.Load() != 1 {
					t.Errorf("nonce accepted %d times", taken.Load())
					return
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != workers*each {
		t.Errorf("%d nonces accepted, want %d", ok.Load(), workers*each)
	}
}

// TestStoreNonces: replicas sharing a store accept each other's nonces,
// once, on either replica.
func TestStoreNonces(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	shared := store.NewMemoryEphemeral(0, clock.now)
	a := &storeNonces{ttl: time.Minute, now: clock.now, eph: shared}
	b := &storeNonces{ttl: time.Minute, now: clock.now, eph: shared}

	v := issue(t, a)
	if err := b.take(ctx, v); err != nil {
		t.Fatalf("a nonce of replica a on replica b: %v", err)
	}
	wantNonceErr(t, "replay on b", b.take(ctx, v), "already used")
	wantNonceErr(t, "replay on a", a.take(ctx, v), "already used")

	late := issue(t, b)
	clock.add(2 * time.Minute)
	wantNonceErr(t, "expired", a.take(ctx, late), "expired")
	wantNonceErr(t, "never issued", a.take(ctx, bytes.Repeat([]byte{7}, NonceSize)), "not issued")
	wantNonceErr(t, "truncated", a.take(ctx, v[:8]), "bytes")
}

// TestStoreNoncesBounded: a full store refuses new nonces with
// ErrTooManyNonces.
func TestStoreNoncesBounded(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Unix(1_800_000_000, 0)}
	n := &storeNonces{ttl: time.Minute, now: clock.now, eph: store.NewMemoryEphemeral(3, clock.now)}
	for range 3 {
		issue(t, n)
	}
	if _, _, err := n.issue(ctx); !errors.Is(err, ErrTooManyNonces) {
		t.Errorf("fourth nonce: %v, want ErrTooManyNonces", err)
	}
	clock.add(2 * time.Minute)
	issue(t, n)
}

// TestServiceNonces: a Service without a store issues memory nonces that
// another Service refuses; Services sharing a store accept each other's
// nonces, once.
func TestServiceNonces(t *testing.T) {
	ctx := context.Background()
	f1, f2 := newFixture(t, true), newFixture(t, true)
	a := simAttester(t)
	bundle := func(f *fixture) *attestation.Bundle {
		n, _, err := f.svc.Nonce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rd := attestation.RuntimeData{Nonce: n}
		b, err := a.Attest(ctx, rd.ReportData())
		if err != nil {
			t.Fatal(err)
		}
		b.RuntimeData = rd
		return b
	}
	if _, err := f2.svc.Verify(ctx, bundle(f1), Options{Freshness: IssuedNonce}); !errors.Is(err, attestation.ErrNonce) {
		t.Errorf("memory nonce of another verifier: %v, want ErrNonce", err)
	}

	shared := store.NewMemoryEphemeral(0, nil)
	for _, f := range []*fixture{f1, f2} {
		f.svc.nonces = &storeNonces{ttl: time.Minute, now: time.Now, eph: shared}
	}
	b := bundle(f1)
	if _, err := f2.svc.Verify(ctx, b, Options{Freshness: IssuedNonce}); err != nil {
		t.Fatalf("replica b, a nonce of replica a: %v", err)
	}
	for _, f := range []*fixture{f1, f2} {
		if _, err := f.svc.Verify(ctx, b, Options{Freshness: IssuedNonce}); !errors.Is(err, attestation.ErrNonce) {
			t.Errorf("replay: %v, want ErrNonce", err)
		}
	}
}

func BenchmarkMemoryNonces(b *testing.B) {
	ctx := context.Background()
	n := newMemoryNonces(5*time.Minute, time.Now, DefaultMaxNonces)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v, _, err := n.issue(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := n.take(ctx, v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
