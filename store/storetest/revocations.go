package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/store"
)

// signerA and signerB are two parties' signing keys, as hex.
var (
	signerA = strings.Repeat("0a", 32)
	signerB = strings.Repeat("0b", 32)
)

func newRevocation(collaboration, signer string, at time.Time, reason string) *store.Revocation {
	return &store.Revocation{Collaboration: collaboration, Signer: signer, Party: fingerprint, RevokedAt: at,
		Statement: []byte(fmt.Sprintf(`{"collaboration":%q,"revoked_at":%q,"reason":%q}`, collaboration, at.Format(time.RFC3339Nano), reason))}
}

func digests(rs []store.Revocation) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Digest[:8])
	}
	return out
}

func testRevocations(t *testing.T, open Open) {
	ctx := context.Background()
	s := open(t, "db")
	if got, err := s.ListRevocations(ctx, "c", signerA, 0); err != nil || len(got) != 0 {
		t.Fatalf("ListRevocations(empty) = %v, %v", got, err)
	}
	first := newRevocation("c", signerA, t0.In(time.FixedZone("X", 3600)).Add(789), "one")
	created, err := s.PutRevocation(ctx, first)
	if err != nil || !created {
		t.Fatalf("PutRevocation = %v, %v", created, err)
	}
	// The same statement again is stored once.
	again := *first
	again.Statement = bytes.Clone(first.Statement)
	if created, err := s.PutRevocation(ctx, &again); err != nil || created {
		t.Fatalf("PutRevocation(same statement) = %v, %v; want not created", created, err)
	}
	got, err := s.ListRevocations(ctx, "c", signerA, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("ListRevocations = %v, %v", got, err)
	}
	sum := sha256.Sum256(first.Statement)
	r := got[0]
	if r.Collaboration != "c" || r.Signer != signerA || r.Party != fingerprint || !r.RevokedAt.Equal(t0) || r.RevokedAt.Location() != time.UTC ||
		!bytes.Equal(r.Statement, first.Statement) || r.Digest != hex.EncodeToString(sum[:]) || !recent(r.StoredAt) {
		t.Errorf("stored revocation %+v", r)
	}
	if first.Digest != "" || !first.StoredAt.IsZero() {
		t.Errorf("PutRevocation modified the caller's revocation: %+v", first)
	}

	// Latest first; only the signer's, only the collaboration's.
	later := newRevocation("c", signerA, t0.Add(time.Hour), "two")
	earlier := newRevocation("c", signerA, t0.Add(-time.Hour), "zero")
	for _, r := range []*store.Revocation{later, earlier, newRevocation("c", signerB, t0.Add(2*time.Hour), "b"), newRevocation("d", signerA, t0.Add(3*time.Hour), "d")} {
		if _, err := s.PutRevocation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err = s.ListRevocations(ctx, "c", signerA, 0)
	want := []time.Time{t0.Add(time.Hour), t0, t0.Add(-time.Hour)}
	if err != nil || len(got) != len(want) {
		t.Fatalf("ListRevocations = %v, %v", digests(got), err)
	}
	for i := range want {
		if !got[i].RevokedAt.Equal(want[i]) || got[i].Signer != signerA || got[i].Collaboration != "c" {
			t.Errorf("ListRevocations[%d] = %+v; want signer A's of c at %v", i, got[i], want[i])
		}
	}
	if got, err := s.ListRevocations(ctx, "c", signerA, 1); err != nil || len(got) != 1 || !got[0].RevokedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("ListRevocations(limit 1) = %v, %v; want the latest", got, err)
	}
	if got, err := s.ListRevocations(ctx, "c", signerB, 0); err != nil || len(got) != 1 {
		t.Errorf("ListRevocations(signer B) = %v, %v", got, err)
	}

	// Invalid fields.
	for name, r := range map[string]*store.Revocation{
		"nil":                 nil,
		"no collaboration":    {Signer: signerA, Party: fingerprint, RevokedAt: t0, Statement: []byte("x")},
		"long collaboration":  {Collaboration: strings.Repeat("c", store.MaxCollaborationIDSize+1), Signer: signerA, Party: fingerprint, RevokedAt: t0, Statement: []byte("x")},
		"signer not hex":      {Collaboration: "c", Signer: strings.ToUpper(signerA), Party: fingerprint, RevokedAt: t0, Statement: []byte("x")},
		"party not hex":       {Collaboration: "c", Signer: signerA, Party: "airline", RevokedAt: t0, Statement: []byte("x")},
		"no time":             {Collaboration: "c", Signer: signerA, Party: fingerprint, Statement: []byte("x")},
		"no statement":        {Collaboration: "c", Signer: signerA, Party: fingerprint, RevokedAt: t0},
		"oversized statement": {Collaboration: "c", Signer: signerA, Party: fingerprint, RevokedAt: t0, Statement: make([]byte, store.MaxRevocationSize+1)},
	} {
		if _, err := s.PutRevocation(ctx, r); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("PutRevocation(%s) = %v; want ErrInvalid", name, err)
		}
	}
	if _, err := s.ListRevocations(ctx, "c", "nope", 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ListRevocations(bad signer) = %v; want ErrInvalid", err)
	}
	if _, err := s.ListRevocations(ctx, "", signerA, 0); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ListRevocations(no collaboration) = %v; want ErrInvalid", err)
	}

	// Durable: a second handle (a restart, a replica) sees them.
	s2 := open(t, "db")
	if got, err := s2.ListRevocations(ctx, "c", signerA, 0); err != nil || len(got) != 3 {
		t.Errorf("ListRevocations on another handle = %v, %v", digests(got), err)
	}
}

// testConcurrentRevocations: replicas storing the same revocation at once
// store it once, and exactly one of them is told it created it.
func testConcurrentRevocations(t *testing.T, open Open) {
	ctx := context.Background()
	handles := []store.Store{open(t, "db"), open(t, "db")}
	const writers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := handles[i%2].PutRevocation(ctx, newRevocation("c", signerA, t0, "same"))
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got, err := handles[0].ListRevocations(ctx, "c", signerA, 0)
	if created != 1 || err != nil || len(got) != 1 {
		t.Errorf("%d writers: %d created, %d stored (%v); want 1 and 1", writers, created, len(got), err)
	}
}

// CheckUpgradedRevocations checks that a database upgraded from a schema
// before revocations stores and lists them.
func CheckUpgradedRevocations(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	if created, err := s.PutRevocation(ctx, newRevocation("c", signerA, t0, "")); err != nil || !created {
		t.Fatalf("PutRevocation after the upgrade = %v, %v", created, err)
	}
	if got, err := s.ListRevocations(ctx, "c", signerA, 0); err != nil || len(got) != 1 {
		t.Fatalf("ListRevocations after the upgrade = %v, %v", got, err)
	}
}
