package keybroker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/store"
)

// runFixture is a broker holding the airline's dataset key, and a
// two-party collaboration whose analysis reads it.
type runFixture struct {
	*fixture
	airline, carrier *party.Identity
	collab           *collab.Collaboration
	sealed           string // the flights file's SHA-256
}

const flightsKey = "airline/dataset-key/flights"

var flightsKeyValue = bytes.Repeat([]byte{7}, 32)

func newRunFixture(t *testing.T) *runFixture {
	t.Helper()
	f := &runFixture{fixture: newFixture(t, fixtureOpts{dev: true})}
	var err error
	if f.airline, err = party.Generate("airline", party.KEMX25519); err != nil {
		t.Fatal(err)
	}
	if f.carrier, err = party.Generate("carrier", party.KEMX25519); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("sealed flights"))
	f.sealed = hex.EncodeToString(sum[:])
	f.collab = f.newCollab(t, f.airline.Card())
	f.putKey(t, f.airline.Card(), f.sealed)
	return f
}

// putKey stores the flights key with the owner pinned in its metadata.
func (f *runFixture) putKey(t *testing.T, owner *party.Card, sealed string) {
	t.Helper()
	meta := map[string]string{MetaKind: KindDatasetKey, MetaSealedSHA256: sealed, MetaOwnerSigningKey: base64.StdEncoding.EncodeToString(owner.SigningKey)}
	if _, err := f.admin.Put(context.Background(), flightsKey, flightsKeyValue, meta, ""); err != nil {
		t.Fatal(err)
	}
}

func testSchema(identity, join string) *table.Schema {
	return &table.Schema{Columns: []table.Column{
		{Name: identity, Type: table.String, Identity: true},
		{Name: join, Type: table.String, Join: true},
		{Name: "area", Type: table.String},
	}}
}

// newCollab builds the collaboration with airlineCard as the airline's card.
func (f *runFixture) newCollab(t *testing.T, airlineCard *party.Card) *collab.Collaboration {
	t.Helper()
	desc := func(id, owner, resource, sealed string, sc *table.Schema) collab.Descriptor {
		return collab.Descriptor{Version: 1, DatasetID: id, Owner: owner, Format: "parquet", Schema: sc, KeyID: strings.Repeat("ab", 32),
			SealedSHA256: sealed, SealedSize: 100, KeyBroker: collab.KeyBrokerRef{URL: f.srv.URL, Resource: resource, Version: 1},
			RegisteredAt: "2026-11-23T10:00:00Z"}
	}
	m := &collab.Manifest{Format: collab.FormatVersion, ID: "airline-carrier", Receivers: []string{"airline"},
		Parties: []collab.Party{
			{Name: "airline", Roles: []collab.Role{collab.RoleDataProvider, collab.RoleResultReceiver}, Card: airlineCard},
			{Name: "carrier", Roles: []collab.Role{collab.RoleDataProvider}, Card: f.carrier.Card()},
		},
		Datasets: []collab.Dataset{
			{ID: "flights", Owner: "airline", Descriptor: desc("flights", "airline", flightsKey, f.sealed, testSchema("member_id", "phone")), OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 10}},
			{ID: "visits", Owner: "carrier", Descriptor: desc("visits", "carrier", "carrier/dataset-key/visits", strings.Repeat("cd", 32), testSchema("subscriber_id", "phone")), OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: 10}},
		},
		Analyses: []collab.Analysis{{ID: "by_area", Kind: collab.KindAggregate, Aggregate: &collab.Aggregate{
			From: "flights", Joins: []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
			GroupBy: []string{"visits.area"}, Measures: []collab.Measure{{Func: collab.AggCount, As: "n"}},
		}}},
		Worker: collab.Worker{ReferenceValues: appraisal.ReferenceValues{Measurements: []appraisal.Measurement{
			{TEE: "sim", Name: "worker", Value: strings.Repeat("11", 48)}}}},
		Verifiers: []collab.Verifier{{Name: "broker", JWKSURL: f.srv.URL + "/.well-known/jwks.json"}},
	}
	c, err := collab.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func approve(t *testing.T, c *collab.Collaboration, ids ...*party.Identity) []byte {
	t.Helper()
	for _, id := range ids {
		if _, err := c.Approve(id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// runContext returns run-context bytes for the collaboration's current
// version.
func runContext(t *testing.T, c *collab.Collaboration, analysis string) []byte {
	t.Helper()
	rc := &collab.RunContext{Version: collab.RunContextVersion, Collaboration: c.ID, ManifestHash: c.Current().Hash(),
		Analysis: analysis, RunID: collab.NewRunID(), SigningKey: bytes.Repeat([]byte{1}, 32)}
	data, err := rc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *runFixture) session(t *testing.T, measurement byte, rc []byte) *Session {
	t.Helper()
	s, err := (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Attest(context.Background(), simAttester(t, measurement), rc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunRelease(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	file := approve(t, f.collab, f.airline, f.carrier)
	rcBytes := runContext(t, f.collab, "by_area")
	rc, err := collab.ParseRunContext(rcBytes)
	if err != nil {
		t.Fatal(err)
	}
	s := f.session(t, 0x11, rcBytes)
	got, err := s.ResourceFor(ctx, flightsKey, file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, flightsKeyValue) {
		t.Fatal("released key differs from the one put")
	}
	// The audit record names the run the key went to.
	a := lastAudit(t, f.fixture)
	if a.Decision != "released" || a.Collaboration != "airline-carrier" || a.ManifestHash != f.collab.Current().Hash() ||
		a.Analysis != "by_area" || a.RunID != rc.RunID {
		t.Errorf("release audited as %+v; want the run %s of by_area on airline-carrier at %s", a, rc.RunID, f.collab.Current().Hash())
	}
	if !strings.Contains(f.logs.String(), `"run_id":"`+rc.RunID+`"`) {
		t.Error("the release decision's log line does not name the run")
	}
}

func lastAudit(t *testing.T, f *fixture) store.AuditRecord {
	t.Helper()
	recs, err := f.admin.Audit(context.Background(), 0, 1000)
	if err != nil || len(recs) == 0 {
		t.Fatalf("audit: %v (%d records)", err, len(recs))
	}
	return recs[len(recs)-1]
}

func TestRunRefusals(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	approvedByAirlineOnly := approve(t, f.collab, f.airline)
	rc := runContext(t, f.collab, "by_area")

	// An attacker's manifest: same ids, but the airline's card replaced and
	// approved by the attacker.
	mallory, _ := party.Generate("airline", party.KEMX25519)
	forged := f.newCollab(t, mallory.Card())
	forgedFile := approve(t, forged, mallory, f.carrier)

	// The carrier approves, then the analysis changes: the airline's
	// approval no longer covers it.
	f2 := newRunFixture(t)
	approve(t, f2.collab, f2.airline, f2.carrier)
	next := *f2.collab.Current()
	next.Previous = next.Hash()
	next.Analyses = append([]collab.Analysis(nil), next.Analyses...)
	agg := *next.Analyses[0].Aggregate
	agg.Measures = []collab.Measure{{Func: collab.AggCount, As: "rows"}}
	next.Analyses[0].Aggregate = &agg
	if err := f2.collab.AddVersion(&next); err != nil {
		t.Fatal(err)
	}
	changedFile := approve(t, f2.collab, f2.carrier)

	tests := []struct {
		name        string
		f           *runFixture
		measurement byte
		rc          []byte
		body        []byte
		plainGET    bool
		status      int
		reason      string
	}{
		{"plain GET of a dataset key", f, 0x11, rc, nil, true, 403, "released only to a clean-room run"},
		{"owner has not approved", f, 0x11, rc, approve(t, f.newCollab(t, f.airline.Card()), f.carrier), false, 403, `"airline"`},
		{"worker measurement not in the manifest", f, 0x22, rc, approvedByAirlineOnly, false, 403, "worker measurement"},
		{"owner card substituted", f, 0x11, runContext(t, forged, "by_area"), forgedFile, false, 403, "does not carry the owner key"},
		{"run context for another manifest", f, 0x11, runContext(t, forged, "by_area"), approvedByAirlineOnly, false, 403, "attested run is for"},
		{"analysis changed after approval", f2, 0x11, runContext(t, f2.collab, "by_area"), changedFile, false, 403, `"airline"`},
		{"malformed collaboration", f, 0x11, rc, []byte(`{"kura_collaboration":`), false, 400, "collaboration"},
		{"oversized collaboration", f, 0x11, rc, bytes.Repeat([]byte(" "), MaxCollaborationSize+1), false, 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.f.session(t, tt.measurement, tt.rc)
			var err error
			if tt.plainGET {
				_, err = s.Resource(ctx, flightsKey)
			} else {
				_, err = s.ResourceFor(ctx, flightsKey, tt.body)
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Status != tt.status {
				t.Fatalf("got %v, want status %d", err, tt.status)
			}
			if !strings.Contains(re.Detail, tt.reason) {
				t.Errorf("detail %q does not say %q", re.Detail, tt.reason)
			}
			if tt.status == http.StatusForbidden {
				// A refusal names the run the attestation claims.
				claimed, _ := collab.ParseRunContext(tt.rc)
				if a := lastAudit(t, tt.f.fixture); a.Decision != "refused" || !strings.Contains(a.Reason, tt.reason) ||
					a.Collaboration != claimed.Collaboration || a.ManifestHash != claimed.ManifestHash || a.RunID != claimed.RunID {
					t.Errorf("audit %+v does not record the refusal of run %s", a, claimed.RunID)
				}
			}
		})
	}
	// The sealed file the key was registered for differs from the
	// manifest's.
	f.putKey(t, f.airline.Card(), strings.Repeat("ee", 32))
	s := f.session(t, 0x11, rc)
	if _, err := s.ResourceFor(ctx, flightsKey, approvedByAirlineOnly); err == nil || !strings.Contains(err.Error(), "sealed SHA-256") {
		t.Errorf("digest mismatch: %v", err)
	}
}

// TestAuditSeqHeader: every resource answer, released or refused, names its
// audit record, whose sequence numbers the store then holds.
func TestAuditSeqHeader(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, fixtureOpts{dev: true})
	if _, err := f.admin.Put(ctx, secretPath, secret, nil, ""); err != nil {
		t.Fatal(err)
	}
	s, err := (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Attest(ctx, simAttester(t, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/kbs/v0/resource/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(AuditSeqHeader)
	}
	code1, seq1 := get(secretPath)
	code2, seq2 := get("owner-a/key/missing")
	if code1 != 200 || code2 != 404 || seq1 == "" || seq2 == "" || seq1 == seq2 {
		t.Fatalf("answers %d %q, %d %q: want 200 and 404, each with its own %s", code1, seq1, code2, seq2, AuditSeqHeader)
	}
	recs, err := f.admin.Audit(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, r := range recs {
		found[fmt.Sprint(r.Seq)] = r.Decision
		if r.Collaboration != "" || r.RunID != "" {
			t.Errorf("record %d names a run, but no run asked: %+v", r.Seq, r)
		}
	}
	if found[seq1] != "released" || found[seq2] != "refused" {
		t.Errorf("audit records %v do not match the answers' sequence numbers %s, %s", found, seq1, seq2)
	}
}

// withVersion appends a version of f's collaboration changed by edit, and
// returns it approved by both owners.
func (f *runFixture) withVersion(t *testing.T, edit func(*collab.Manifest)) []byte {
	t.Helper()
	data, err := json.Marshal(f.collab.Current())
	if err != nil {
		t.Fatal(err)
	}
	m, err := collab.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	m.Previous = f.collab.Current().Hash()
	edit(m)
	if err := f.collab.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	return approve(t, f.collab, f.airline, f.carrier)
}

// TestRunLimits: the broker releases a dataset key to at most max_runs
// runs of an analysis (a run asking again is the same run), and to no run
// once the manifest's approvals have lapsed; each refusal names why.
func TestRunLimits(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	file := f.withVersion(t, func(m *collab.Manifest) {
		m.Analyses[0].MaxRuns = 2
		m.Expires = "2099-01-01T00:00:00Z"
	})
	fetch := func(rc []byte) error {
		_, err := f.session(t, 0x11, rc).ResourceFor(ctx, flightsKey, file)
		return err
	}
	first := runContext(t, f.collab, "by_area")
	for i, rc := range [][]byte{first, first, runContext(t, f.collab, "by_area")} {
		if err := fetch(rc); err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
	}
	err := fetch(runContext(t, f.collab, "by_area"))
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "may run 2 time(s)") {
		t.Fatalf("a third run: %v, want refused past max_runs", err)
	}
	if a := lastAudit(t, f.fixture); a.Decision != "refused" || !strings.Contains(a.Reason, "may run 2 time(s)") {
		t.Errorf("refusal audited as %+v", a)
	}

	lapsed := f.withVersion(t, func(m *collab.Manifest) { m.Expires = "2020-01-01T00:00:00Z" })
	_, err = f.session(t, 0x11, runContext(t, f.collab, "by_area")).ResourceFor(ctx, flightsKey, lapsed)
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "lapsed at 2020-01-01T00:00:00Z") {
		t.Fatalf("a run after the approvals lapsed: %v", err)
	}
}
