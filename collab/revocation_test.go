package collab

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRevokeAndRestore: a revocation withdraws every approval its party
// signed at or before it, only that party's; a later approval, of the
// same version or of a new one, restores it.
func TestRevokeAndRestore(t *testing.T) {
	c, ids := started(t)
	for _, n := range []string{"airline", "carrier"} {
		if _, err := c.Approve(ids[n], t0); err != nil {
			t.Fatal(err)
		}
	}
	// Revoking at the approval's very second revokes it: at or before.
	r, err := c.Revoke(ids["airline"], t0.Add(300*time.Millisecond), "audit pending")
	if err != nil {
		t.Fatal(err)
	}
	if !r.RevokedAt.Equal(t0) || r.Party != ids["airline"].Card().Fingerprint || r.ManifestHash != c.Current().Hash() || r.Collaboration != c.ID {
		t.Fatalf("revocation %+v", r)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	err = c.CheckApproved(key(ids["airline"]), "visitors_by_age")
	var nae *NotApprovedError
	if !errors.Is(err, ErrRevoked) || !errors.Is(err, ErrNotApproved) || !errors.As(err, &nae) || nae.Party != "airline" ||
		!strings.Contains(err.Error(), `party "airline" revoked its approval (of version 1) at 2026-11-23T10:00:00Z`) {
		t.Fatalf("CheckApproved after revoking = %v", err)
	}
	if err := c.CheckPartyApproved(key(ids["airline"])); !errors.Is(err, ErrRevoked) {
		t.Fatalf("CheckPartyApproved after revoking = %v", err)
	}
	// The carrier's approval stands: a revocation is its party's alone.
	if err := c.CheckApproved(key(ids["carrier"]), "visitors_by_age"); err != nil {
		t.Fatalf("the carrier, after the airline revoked: %v", err)
	}
	st := state(c, "airline")
	if st.State != Revoked || st.Via != 1 || st.RevokedAt == nil || !st.RevokedAt.Equal(t0) || st.Reason != "audit pending" {
		t.Fatalf("status %+v", st)
	}
	// The file keeps it.
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseCollaboration(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Verify(); err != nil {
		t.Fatal(err)
	}
	if st := state(c2, "airline"); st.State != Revoked {
		t.Fatalf("after a round trip: %+v", st)
	}

	// A new version the airline's scope does not see still carries the
	// revoked approval; approving it restores.
	m := next(t, c)
	m.Description = "v2"
	if err := c.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age"); !errors.Is(err, ErrRevoked) {
		t.Fatalf("version 2 before approving it: %v", err)
	}
	if _, err := c.Approve(ids["airline"], t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age"); err != nil {
		t.Fatalf("after approving version 2: %v", err)
	}
	if st := state(c, "airline"); st.State != Approved || st.Via != 2 {
		t.Fatalf("status %+v", st)
	}
	// Revoking again, then approving the same version again, restores too.
	if _, err := c.Revoke(ids["airline"], t0.Add(time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	if st := state(c, "airline"); st.State != Revoked || st.Via != 2 {
		t.Fatalf("status %+v", st)
	}
	if _, err := c.Approve(ids["airline"], t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age"); err != nil {
		t.Fatalf("after approving again: %v", err)
	}
	// Approving in the very second of revoking is signed a second later,
	// so that it restores.
	if _, err := c.Revoke(ids["airline"], t0.Add(3*time.Hour), ""); err != nil {
		t.Fatal(err)
	}
	a, err := c.Approve(ids["airline"], t0.Add(3*time.Hour+500*time.Millisecond))
	if err != nil || !a.SignedAt.Equal(t0.Add(3*time.Hour+time.Second)) {
		t.Fatalf("approval in the second of the revocation: %+v, %v", a, err)
	}
	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age"); err != nil {
		t.Fatalf("after approving in the second of revoking: %v", err)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestRevocationsHeldElsewhere: CheckApproved counts the revocations a key
// broker holds, not only the file's, but only those of this collaboration
// signed by the owner key it checks.
func TestRevocationsHeldElsewhere(t *testing.T) {
	c, ids := started(t)
	for _, n := range []string{"airline", "carrier"} {
		if _, err := c.Approve(ids[n], t0); err != nil {
			t.Fatal(err)
		}
	}
	// Revocations made on copies: the file checked holds none of them.
	revoke := func(name string, edit func(*Collaboration)) *Revocation {
		t.Helper()
		cp := *c
		cp.Revocations = nil
		if edit != nil {
			edit(&cp)
		}
		r, err := cp.Revoke(ids[name], t0.Add(time.Minute), "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	airline, carrier := revoke("airline", nil), revoke("carrier", nil)
	other := revoke("airline", func(cp *Collaboration) { cp.ID = "another-collaboration" })

	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age", carrier, other); err != nil {
		t.Fatalf("the carrier's revocation, and the airline's of another collaboration, count against the airline: %v", err)
	}
	if err := c.CheckApproved(key(ids["carrier"]), "visitors_by_age", airline); err != nil {
		t.Fatalf("the airline's revocation counts against the carrier: %v", err)
	}
	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age", carrier, airline); !errors.Is(err, ErrRevoked) {
		t.Fatalf("the airline's own revocation: %v", err)
	}
	// One signed by the carrier naming the airline does not count
	// against the airline, and does not verify (so no server keeps it).
	forged := *airline
	msg, _ := forged.Message()
	forged.Signature = ids["carrier"].Sign(msg)
	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age", &forged); err != nil {
		t.Fatalf("the carrier's revocation naming the airline counts against the airline: %v", err)
	}
	if _, err := c.VerifyRevocation(&forged); !errors.Is(err, ErrBadRevocation) || !strings.Contains(err.Error(), `by "airline"`) {
		t.Fatalf("VerifyRevocation(forged) = %v", err)
	}
}

func TestBadRevocations(t *testing.T) {
	c, ids := started(t)
	if _, err := c.Approve(ids["airline"], t0); err != nil {
		t.Fatal(err)
	}
	r, err := c.Revoke(ids["airline"], t0, "why")
	if err != nil {
		t.Fatal(err)
	}
	c.Revocations = nil
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseRevocation(data); err != nil || got.Digest() != r.Digest() {
		t.Fatalf("ParseRevocation = %+v, %v", got, err)
	}

	// Revocations that parse but do not verify.
	other := *c
	other.ID = "another-collaboration"
	for name, tc := range map[string]struct {
		edit func(r *Revocation)
		c    *Collaboration
		want string
	}{
		"tampered reason":       {func(r *Revocation) { r.Reason = "no reason" }, c, "signature invalid"},
		"tampered time":         {func(r *Revocation) { r.RevokedAt = r.RevokedAt.Add(time.Second) }, c, "signature invalid"},
		"tampered signature":    {func(r *Revocation) { r.Signature[3] ^= 1 }, c, "signature invalid"},
		"wrong key":             {func(r *Revocation) { m, _ := r.Message(); r.Signature = ids["carrier"].Sign(m) }, c, "signature invalid"},
		"another party named":   {func(r *Revocation) { r.Party = ids["carrier"].Card().Fingerprint }, c, "signature invalid"},
		"unknown party":         {func(r *Revocation) { r.Party = strings.Repeat("0", 64) }, c, "no party"},
		"unknown version":       {func(r *Revocation) { r.ManifestHash = strings.Repeat("0", 64) }, c, "is no version"},
		"another collaboration": {nil, &other, `collaboration "airline-carrier-2026", not "another-collaboration"`},
	} {
		t.Run(name, func(t *testing.T) {
			b := *r
			b.Signature = bytes.Clone(r.Signature)
			if tc.edit != nil {
				tc.edit(&b)
			}
			_, err := tc.c.VerifyRevocation(&b)
			if !errors.Is(err, ErrBadRevocation) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("VerifyRevocation = %v, want %q", err, tc.want)
			}
			if _, err := tc.c.AddRevocation(&b); !errors.Is(err, ErrBadRevocation) {
				t.Fatalf("AddRevocation = %v", err)
			}
			c2 := *tc.c
			c2.Revocations = []*Revocation{&b}
			if err := c2.Verify(); tc.c == c && !errors.Is(err, ErrBadRevocation) {
				t.Fatalf("Verify = %v", err)
			}
			// A revocation that does not verify revokes nothing.
			if err := c2.CheckApproved(key(ids["airline"]), "visitors_by_age"); tc.c == c && err != nil {
				t.Fatalf("CheckApproved = %v", err)
			}
			if tc.edit != nil && b.VerifyKey(key(ids["airline"])) == nil {
				t.Fatal("VerifyKey accepted it")
			}
		})
	}
	if err := r.VerifyKey(key(ids["carrier"])); !errors.Is(err, ErrBadRevocation) {
		t.Errorf("VerifyKey(another key) = %v", err)
	}

	// Bytes that do not parse.
	var m map[string]any
	json.Unmarshal(data, &m)
	with := func(k string, v any) []byte {
		cp := map[string]any{}
		for k, v := range m {
			cp[k] = v
		}
		if v == nil {
			delete(cp, k)
		} else {
			cp[k] = v
		}
		b, _ := json.Marshal(cp)
		return b
	}
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"truncated":          {data[:len(data)-2], "unexpected EOF"},
		"oversized":          {append(bytes.Repeat([]byte(" "), MaxRevocationSize), data...), "limit"},
		"trailing data":      {append(bytes.Clone(data), "{}"...), "after the document"},
		"unknown field":      {with("scope", "x"), "unknown field"},
		"no signature":       {with("signature", nil), "signature is 0 bytes"},
		"no party":           {with("party", nil), "party is not a card fingerprint"},
		"upper-case party":   {with("party", strings.ToUpper(r.Party)), "party is not a card fingerprint"},
		"no collaboration":   {with("collaboration", nil), "no collaboration id"},
		"no time":            {with("revoked_at", nil), "whole seconds"},
		"fraction of second": {with("revoked_at", "2026-11-23T10:00:00.5Z"), "whole seconds"},
		"control character":  {with("reason", "a\nb"), "control characters"},
		"long reason":        {with("reason", strings.Repeat("x", MaxReasonSize+1)), "limit"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseRevocation(tc.data); !errors.Is(err, ErrMalformedRevocation) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseRevocation = %v, want %q", err, tc.want)
			}
		})
	}

	// Dated in the future of the verifier's clock.
	if err := r.CheckTime(t0.Add(-MaxRevocationSkew)); err != nil {
		t.Errorf("CheckTime within the skew: %v", err)
	}
	if err := r.CheckTime(t0.Add(-MaxRevocationSkew - time.Second)); !errors.Is(err, ErrMalformedRevocation) || !strings.Contains(err.Error(), "future") {
		t.Errorf("CheckTime past the skew: %v", err)
	}

	// Only the party's own card signs: an imposter, or a stranger.
	if _, err := c.Revoke(ids["analyst"], t0, ""); err != nil {
		t.Errorf("the analyst is a party and may revoke: %v", err)
	}
	c.Revocations = nil
	imposter := *c.Current()
	imposter.Parties = nil
	cc := &Collaboration{Format: c.Format, ID: c.ID, Versions: []*Manifest{&imposter}}
	if _, err := cc.Revoke(ids["airline"], t0, ""); !errors.Is(err, ErrBadRevocation) {
		t.Errorf("Revoke by a stranger: %v", err)
	}

	// The same revocation twice: recorded once; a file holding it twice
	// does not verify.
	if added, err := c.AddRevocation(r); !added || err != nil {
		t.Fatalf("AddRevocation = %v, %v", added, err)
	}
	if added, err := c.AddRevocation(r); added || err != nil {
		t.Fatalf("AddRevocation again = %v, %v", added, err)
	}
	c.Revocations = append(c.Revocations, r)
	if err := c.Verify(); !errors.Is(err, ErrBadRevocation) || !strings.Contains(err.Error(), "second copy") {
		t.Fatalf("Verify with a duplicate = %v", err)
	}
}

func FuzzParseRevocation(f *testing.F) {
	c, ids := started(f)
	r, err := c.Revoke(ids["carrier"], t0, "the audit is pending")
	if err != nil {
		f.Fatal(err)
	}
	good, err := r.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"collaboration":"x","party":"","manifest_hash":"","revoked_at":"2026-11-23T10:00:00+09:00","signature":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRevocation(data)
		if err != nil {
			return
		}
		_, _ = c.VerifyRevocation(r)
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRevocation(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		b2, _ := r2.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatal("marshal → parse → marshal differs")
		}
	})
}
