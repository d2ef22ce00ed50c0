package collab

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kura-cc/kura/party"
)

// next returns a copy of c's current version chained to it.
func next(t testing.TB, c *Collaboration) *Manifest {
	t.Helper()
	m := clone(t, c.Current())
	m.Previous = c.Current().Hash()
	return m
}

func started(t testing.TB) (*Collaboration, map[string]*party.Identity) {
	t.Helper()
	m, ids := load(t)
	c, err := New(m)
	if err != nil {
		t.Fatal(err)
	}
	return c, ids
}

func key(id *party.Identity) ed25519.PublicKey { return id.Card().SigningKey }

func state(c *Collaboration, name string) PartyStatus {
	for _, s := range c.Status() {
		if s.Party == name {
			return s
		}
	}
	return PartyStatus{}
}

func TestApproveAndCheck(t *testing.T) {
	c, ids := started(t)
	if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age"); !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), `party "airline" never approved`) {
		t.Fatalf("before approval: %v", err)
	}
	for _, n := range []string{"airline", "carrier"} {
		if _, err := c.Approve(ids[n], t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"airline", "carrier"} {
		if err := c.CheckApproved(key(ids[n]), "visitors_by_age"); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err)
	}
	// The analyst owns no data: no key of its is released for anything.
	if err := c.CheckApproved(key(ids["analyst"]), "visitors_by_age"); !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), `reads no dataset of "analyst"`) {
		t.Fatal(err)
	}
	// The airline's data is not read by pings_by_region.
	if err := c.CheckApproved(key(ids["airline"]), "pings_by_region"); !errors.Is(err, ErrNotApproved) {
		t.Fatal(err)
	}
	if err := c.CheckApproved(key(ids["airline"]), "nope"); !errors.Is(err, ErrNotApproved) {
		t.Fatal(err)
	}
	st := state(c, "airline")
	if st.State != Approved || st.Via != 1 || !st.Required {
		t.Fatalf("%+v", st)
	}
	if st := state(c, "analyst"); st.State != Missing || st.Required {
		t.Fatalf("%+v", st)
	}
	// Round trip through the file keeps everything.
	b, _ := c.Marshal()
	c2, err := ParseCollaboration(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := c2.CheckApproved(key(ids["carrier"]), "visitors_sql"); err != nil {
		t.Fatal(err)
	}
}

func TestApproveWrongIdentity(t *testing.T) {
	c, _ := started(t)
	imposter, _ := party.Generate("airline", party.KEMX25519)
	if _, err := c.Approve(imposter, t0); !errors.Is(err, ErrBadApproval) {
		t.Fatal(err)
	}
	stranger, _ := party.Generate("eve", party.KEMX25519)
	if _, err := c.Approve(stranger, t0); !errors.Is(err, ErrBadApproval) {
		t.Fatal(err)
	}
}

func TestTamperedApproval(t *testing.T) {
	c, ids := started(t)
	a, err := c.Approve(ids["airline"], t0)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(a *Approval){
		"signature": func(a *Approval) { a.Signature[0] ^= 1 },
		"time":      func(a *Approval) { a.SignedAt = a.SignedAt.Add(1e9) },
		"scope":     func(a *Approval) { a.ScopeDigest = strings.Repeat("0", 64) },
		"hash":      func(a *Approval) { a.ManifestHash = strings.Repeat("0", 64) },
		"version":   func(a *Approval) { a.Version = 2 },
		"party":     func(a *Approval) { a.Party = "carrier" },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			b := *a
			b.Signature = bytes.Clone(a.Signature)
			f(&b)
			if err := c.AddApproval(&b); !errors.Is(err, ErrBadApproval) {
				t.Fatalf("AddApproval = %v", err)
			}
			c2 := &Collaboration{Format: c.Format, ID: c.ID, Versions: c.Versions, Approvals: []*Approval{&b}}
			if err := c2.Verify(); !errors.Is(err, ErrBadApproval) {
				t.Fatalf("Verify = %v", err)
			}
			if name == "signature" || name == "time" {
				err := c2.CheckApproved(key(ids["airline"]), "visitors_by_age")
				if !errors.Is(err, ErrBadApproval) || !strings.Contains(err.Error(), "airline") {
					t.Fatalf("CheckApproved = %v", err)
				}
			}
		})
	}
	// Signed by the wrong key: the carrier signs the airline's approval.
	b := *a
	msg, _ := b.Message(c.ID)
	b.Signature = ids["carrier"].Sign(msg)
	if err := c.AddApproval(&b); !errors.Is(err, ErrBadApproval) {
		t.Fatal(err)
	}
	// The genuine one is accepted by AddApproval.
	c3 := &Collaboration{Format: c.Format, ID: c.ID, Versions: c.Versions}
	if err := c3.AddApproval(a); err != nil {
		t.Fatal(err)
	}
}

func TestReapprovalRule(t *testing.T) {
	tests := []struct {
		name             string
		change           func(m *Manifest)
		airline, carrier State
		because          string
	}{
		{"unrelated: towers policy", func(m *Manifest) { m.Dataset("towers").OutputPolicy.MinDistinctIdentities = 30 }, Approved, Stale, `dataset "towers"`},
		{"unrelated: description", func(m *Manifest) { m.Description = "new" }, Approved, Approved, ""},
		{"airline dataset", func(m *Manifest) { m.Dataset("passengers").OutputPolicy.MinDistinctIdentities = 11 }, Stale, Stale, `dataset "passengers"`},
		{"analysis reading airline", func(m *Manifest) { m.Analysis("visitors_sql").SQL += "LIMIT 10\n" }, Stale, Stale, `analysis "visitors_sql"`},
		{"new analysis reading airline", func(m *Manifest) {
			a := clone(t, m).Analyses[0]
			a.ID = "visitors_again"
			m.Analyses = append(m.Analyses, a)
		}, Stale, Stale, `analysis "visitors_again" (added)`},
		{"worker", func(m *Manifest) { m.Worker.ReferenceValues.Measurements = m.Worker.ReferenceValues.Measurements[1:] }, Stale, Stale, "worker reference values"},
		{"receiver card", func(m *Manifest) {
			id, _ := party.Generate("analyst", party.KEMX25519)
			m.Party("analyst").Card = id.Card()
		}, Stale, Stale, `receiver card "analyst"`},
		{"co-read dataset", func(m *Manifest) { m.Dataset("subscribers").OutputPolicy.MinDistinctIdentities = 6 }, Stale, Stale, `dataset "subscribers"`},
		{"verifier list", func(m *Manifest) { m.Verifiers = m.Verifiers[:1] }, Stale, Stale, "the verifier list"},
		{"verifier url", func(m *Manifest) { m.Verifiers[0].URL = "https://elsewhere.example" }, Stale, Stale, "the verifier list"},
		{"approval expiry", func(m *Manifest) { m.Expires = "2030-01-01T00:00:00Z" }, Stale, Stale, "the approval expiry"},
		{"max runs of an analysis reading airline", func(m *Manifest) { m.Analysis("visitors_sql").MaxRuns = 3 }, Stale, Stale, `analysis "visitors_sql"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ids := started(t)
			for _, n := range []string{"airline", "carrier"} {
				if _, err := c.Approve(ids[n], t0); err != nil {
					t.Fatal(err)
				}
			}
			m := next(t, c)
			tt.change(m)
			if err := c.AddVersion(m); err != nil {
				t.Fatal(err)
			}
			if err := c.Verify(); err != nil {
				t.Fatal(err)
			}
			for n, want := range map[string]State{"airline": tt.airline, "carrier": tt.carrier} {
				st := state(c, n)
				if st.State != want {
					t.Fatalf("%s: %+v, want %s", n, st, want)
				}
				an := "visitors_by_age"
				err := c.CheckApproved(key(ids[n]), an)
				if want == Approved {
					if err != nil {
						t.Fatalf("%s: %v", n, err)
					}
					continue
				}
				var nae *NotApprovedError
				if !errors.As(err, &nae) || !errors.Is(err, ErrNotApproved) || nae.StaleSince != 2 || nae.Approved != 1 {
					t.Fatalf("%s: %v", n, err)
				}
				if n == "airline" && !strings.Contains(err.Error(), tt.because) {
					t.Fatalf("%s: %v does not say %q", n, err, tt.because)
				}
			}
			// VersionChanges names the same parties, for the same reasons.
			changes, err := c.VersionChanges(2)
			if err != nil {
				t.Fatal(err)
			}
			must := map[string][]string{}
			for _, pc := range changes {
				must[pc.Party] = pc.Changes
			}
			for n, want := range map[string]State{"airline": tt.airline, "carrier": tt.carrier} {
				why, listed := must[n]
				if listed != (want == Stale) || listed && !slices.Equal(why, state(c, n).Changes) {
					t.Fatalf("VersionChanges(2) gives %s %q (listed %v); Status says %+v", n, why, listed, state(c, n))
				}
			}
			for _, v := range []int{0, 1, 3} {
				if _, err := c.VersionChanges(v); !errors.Is(err, ErrInvalidManifest) {
					t.Fatalf("VersionChanges(%d): %v", v, err)
				}
			}
			// Re-approving brings the party back.
			if _, err := c.Approve(ids["airline"], t0); err != nil {
				t.Fatal(err)
			}
			if err := c.CheckApproved(key(ids["airline"]), "visitors_by_age"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSubstitutedCard(t *testing.T) {
	c, ids := started(t)
	if _, err := c.Approve(ids["airline"], t0); err != nil {
		t.Fatal(err)
	}
	// The coordinator replaces the airline's card with one it controls and
	// approves in its name.
	mallory, _ := party.Generate("airline", party.KEMX25519)
	m := next(t, c)
	m.Party("airline").Card = mallory.Card()
	if err := c.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(mallory, t0); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(); err != nil {
		t.Fatal(err) // everything is signed as claimed
	}
	// The broker pins the real airline key: refused.
	err := c.CheckApproved(key(ids["airline"]), "visitors_by_age")
	if !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), "card was replaced") {
		t.Fatal(err)
	}
}

func TestBrokenChain(t *testing.T) {
	c, _ := started(t)
	m := next(t, c)
	m.Previous = strings.Repeat("ab", 32)
	m.Description = "x"
	if err := c.AddVersion(m); !errors.Is(err, ErrBrokenChain) {
		t.Fatal(err)
	}
	m = next(t, c)
	m.ID = "other"
	if err := c.AddVersion(m); !errors.Is(err, ErrBrokenChain) {
		t.Fatal(err)
	}
	m = next(t, c)
	if err := c.AddVersion(m); !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatal(err)
	}
	m.Description = "y"
	if err := c.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	// Editing version 1 in place breaks the chain.
	c.Versions[0].Description = "rewritten history"
	if err := c.Verify(); !errors.Is(err, ErrBrokenChain) {
		t.Fatal(err)
	}
	if err := c.CheckApproved(nil, "visitors_by_age"); !errors.Is(err, ErrBrokenChain) {
		t.Fatal(err)
	}
	if _, err := New(m); !errors.Is(err, ErrBrokenChain) {
		t.Fatal(err)
	}
}

func TestParseCollaborationErrors(t *testing.T) {
	c, ids := started(t)
	c.Approve(ids["airline"], t0)
	good, _ := c.Marshal()
	cases := map[string][]byte{
		"truncated":   good[:len(good)/2],
		"oversized":   append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxCollaborationSize)...),
		"unknown":     bytes.Replace(good, []byte(`"id": "airline`), []byte(`"x": 1, "id": "airline`), 1),
		"format":      bytes.Replace(good, []byte(`"kura_collaboration": 1`), []byte(`"kura_collaboration": 2`), 1),
		"no versions": []byte(`{"kura_collaboration":1,"id":"x","versions":[]}`),
		"null field":  bytes.Replace(good, []byte(`"description": "`), []byte(`"location": null, "description": "`), 1),
		"not normal":  bytes.Replace(good, []byte(`"min_distinct_identities": 10`), []byte(`"min_distinct_identities": 10.0`), 1),
		"dup key":     bytes.Replace(good, []byte(`"description": "`), []byte(`"description": "a", "description": "`), 1),
		"invalid":     bytes.Replace(good, []byte(`"min_distinct_identities": 10`), []byte(`"min_distinct_identities": 0`), 1),
		"trailing":    append(bytes.Clone(good), []byte("{}")...),
		"null appr":   bytes.Replace(good, []byte(`"approvals": [`), []byte(`"approvals": [null,`), 1),
	}
	for name, b := range cases {
		if bytes.Equal(b, good) {
			t.Fatalf("%s: no change", name)
		}
		if _, err := ParseCollaboration(b); !errors.Is(err, ErrMalformedCollaboration) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestCheckPartyApproved: a party relies on the current version only when
// its own approval covers it; a change to the verifier list needs its
// approval again, and a key that is no party's is refused.
func TestCheckPartyApproved(t *testing.T) {
	c, ids := started(t)
	if err := c.CheckPartyApproved(key(ids["analyst"])); !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), `party "analyst" never approved`) {
		t.Fatalf("before approval: %v", err)
	}
	if _, err := c.Approve(ids["analyst"], t0); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckPartyApproved(key(ids["analyst"])); err != nil {
		t.Fatal(err)
	}
	m := next(t, c)
	m.Description = "unrelated"
	if err := c.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckPartyApproved(key(ids["analyst"])); err != nil {
		t.Fatalf("after an unrelated change: %v", err)
	}
	m = next(t, c)
	m.Verifiers = append(m.Verifiers, Verifier{Name: "mallory-verifier", JWKSURL: "https://mallory.example/jwks"})
	if err := c.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	var nae *NotApprovedError
	if err := c.CheckPartyApproved(key(ids["analyst"])); !errors.As(err, &nae) || nae.StaleSince != 3 || !strings.Contains(err.Error(), "the verifier list") {
		t.Errorf("after a verifier was added: %v", err)
	}
	stranger, _ := party.Generate("stranger", party.KEMX25519)
	if err := c.CheckPartyApproved(key(stranger)); !errors.Is(err, ErrNotApproved) || !strings.Contains(err.Error(), "no party") {
		t.Errorf("a stranger's key: %v", err)
	}
}
