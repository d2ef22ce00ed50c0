package keybroker

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/timelock/beacon"
)

// TestTimePolicy releases a time-released secret over real HTTP only with
// a verified beacon of the release round or later, and records every
// refusal.
func TestTimePolicy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	now := time.Now()
	b, err := beacon.New(beacon.Config{Genesis: now.Add(-time.Minute), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	forger, _ := beacon.New(beacon.Config{Genesis: now.Add(-time.Minute), Now: func() time.Time { return now }})
	const path = "owner-a/key/timed"
	notBefore := b.Current() + 5
	meta := map[string]string{
		MetaNotBeforeRound:  strconv.FormatUint(notBefore, 10),
		MetaBeaconChainHash: b.ChainHash(),
		MetaBeaconPublicKey: hex.EncodeToString(b.PublicKey()),
	}
	if _, err := f.admin.Put(ctx, path, []byte("launch code"), meta, ""); err != nil {
		t.Fatal(err)
	}
	c := &Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
	s, err := c.Attest(ctx, simAttester(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(bb *beacon.Beacon, r uint64) []byte {
		sig, err := bb.Sign(r)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	before := auditCount(t, f)
	refusals := []struct {
		name  string
		fetch func() ([]byte, error)
		want  string
	}{
		{"no beacon", func() ([]byte, error) { return s.Resource(ctx, path) }, "present that round's beacon"},
		{"earlier round", func() ([]byte, error) { return s.ResourceWithBeacon(ctx, path, notBefore-1, sign(b, notBefore-1)) }, "earlier"},
		{"forged", func() ([]byte, error) { return s.ResourceWithBeacon(ctx, path, notBefore, sign(forger, notBefore)) }, "does not verify"},
		{"other round's signature", func() ([]byte, error) { return s.ResourceWithBeacon(ctx, path, notBefore+1, sign(b, notBefore)) }, "does not verify"},
	}
	for _, tc := range refusals {
		if _, err := tc.fetch(); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want denied with %q", tc.name, err, tc.want)
		}
	}
	if got := auditCount(t, f) - before; got != len(refusals) {
		t.Errorf("%d audit records for %d refusals", got, len(refusals))
	}
	for _, r := range []uint64{notBefore, notBefore + 100} {
		got, err := s.ResourceWithBeacon(ctx, path, r, sign(b, r))
		if err != nil || string(got) != "launch code" {
			t.Fatalf("round %d: %q, %v", r, got, err)
		}
	}
	// A resource without the metadata is unaffected.
	if _, err := f.admin.Put(ctx, "owner-a/key/plain", []byte("x"), nil, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resource(ctx, "owner-a/key/plain"); err != nil {
		t.Fatal(err)
	}
}
