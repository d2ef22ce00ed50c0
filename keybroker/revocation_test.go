package keybroker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/party"
)

const visitsKey = "carrier/dataset-key/visits"

var visitsKeyValue = bytes.Repeat([]byte{9}, 32)

// putVisitsKey stores the carrier's key beside the airline's: a broker
// both owners share (Put directly, as the carrier's tenant would).
func (f *runFixture) putVisitsKey(t *testing.T) {
	t.Helper()
	meta := map[string]string{MetaKind: KindDatasetKey, MetaSealedSHA256: strings.Repeat("cd", 32), MetaOwnerSigningKey: base64.StdEncoding.EncodeToString(f.carrier.Card().SigningKey)}
	if _, err := f.broker.Put(context.Background(), visitsKey, visitsKeyValue, meta, "", "admin:carrier"); err != nil {
		t.Fatal(err)
	}
}

// revocation signs a revocation by id of f's collaboration at at, kept
// out of the collaboration file: the brokers hold it, the file a run
// presents need not.
func (f *runFixture) revocation(t *testing.T, id *party.Identity, at time.Time) []byte {
	t.Helper()
	r, err := f.collab.Revoke(id, at, "audit pending")
	if err != nil {
		t.Fatal(err)
	}
	f.collab.Revocations = f.collab.Revocations[:len(f.collab.Revocations)-1]
	data, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *runFixture) file(t *testing.T) []byte {
	t.Helper()
	data, err := f.collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *runFixture) revoke(t *testing.T, revocation, file []byte) (*RevocationResponse, error) {
	t.Helper()
	return (&Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}).Revoke(context.Background(), revocation, file)
}

// TestRevokedApproval: once the broker holds the owner's revocation, it
// refuses the owner's key to every run relying on an approval signed at
// or before it, whatever file the run presents, with a problem naming the
// owner, audited; an approval signed later releases it again.
func TestRevokedApproval(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, id := range []*party.Identity{f.airline, f.carrier} {
		if _, err := f.collab.Approve(id, start); err != nil {
			t.Fatal(err)
		}
	}
	approved := f.file(t)
	fetch := func(file []byte) error {
		_, err := f.session(t, 0x11, runContext(t, f.collab, "by_area")).ResourceFor(ctx, flightsKey, file)
		return err
	}
	if err := fetch(approved); err != nil {
		t.Fatalf("before revoking: %v", err)
	}

	rev := f.revocation(t, f.airline, start.Add(time.Minute))
	got, err := f.revoke(t, rev, approved)
	if err != nil {
		t.Fatal(err)
	}
	if got.Party != "airline" || got.Fingerprint != f.airline.Card().Fingerprint || !got.New || len(got.Resources) != 1 || got.Resources[0] != flightsKey ||
		!got.RevokedAt.Equal(start.Add(time.Minute)) {
		t.Errorf("answer %+v", got)
	}
	if !strings.Contains(f.logs.String(), "approval revocation accepted") {
		t.Error("the revocation was not logged")
	}
	// Delivered again, by anyone: held once.
	if again, err := f.revoke(t, rev, approved); err != nil || again.New {
		t.Errorf("delivered again: %+v, %v", again, err)
	}

	err = fetch(approved)
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || !strings.HasSuffix(re.Type, "/approval-revoked") ||
		!errors.Is(err, ErrApprovalRevoked) || !errors.Is(err, ErrDenied) || !strings.Contains(re.Detail, `party "airline" revoked its approval`) {
		t.Fatalf("after revoking: %v, want 403 approval-revoked naming the airline", err)
	}
	if a := lastAudit(t, f.fixture); a.Decision != "refused" || !strings.Contains(a.Reason, "approval revoked") || !strings.Contains(a.Reason, `"airline"`) {
		t.Errorf("refusal audited as %+v", a)
	}

	// The airline approves again: released.
	if _, err := f.collab.Approve(f.airline, start.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := fetch(f.file(t)); err != nil {
		t.Fatalf("after approving again: %v", err)
	}
	// A file holding the revocation itself, delivered to no broker, is
	// refused too.
	g := newRunFixture(t)
	for _, id := range []*party.Identity{g.airline, g.carrier} {
		if _, err := g.collab.Approve(id, start); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.collab.Revoke(g.airline, start.Add(time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	_, err = g.session(t, 0x11, runContext(t, g.collab, "by_area")).ResourceFor(ctx, flightsKey, g.file(t))
	if !errors.Is(err, ErrApprovalRevoked) {
		t.Fatalf("a file holding the revocation: %v", err)
	}
}

// TestRevocationTenants: a revocation withholds only its signer's keys.
// On a broker holding both owners' keys, the carrier's revocation leaves
// the airline's key released; a revocation the airline signed naming the
// carrier is refused and withholds nothing; a broker holding no key of the
// party keeps nothing.
func TestRevocationTenants(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t)
	f.putVisitsKey(t)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, id := range []*party.Identity{f.airline, f.carrier} {
		if _, err := f.collab.Approve(id, start); err != nil {
			t.Fatal(err)
		}
	}
	file := f.file(t)
	fetch := func(path string) error {
		_, err := f.session(t, 0x11, runContext(t, f.collab, "by_area")).ResourceFor(ctx, path, file)
		return err
	}

	// Signed by the airline, naming the carrier: refused, nothing kept.
	var r collab.Revocation
	json.Unmarshal(f.revocation(t, f.carrier, start.Add(time.Minute)), &r)
	msg, _ := r.Message()
	r.Signature = f.airline.Sign(msg)
	forged, _ := r.Marshal()
	_, err := f.revoke(t, forged, file)
	var re *web.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusUnprocessableEntity || !strings.Contains(re.Detail, `by "carrier"`) {
		t.Fatalf("the airline's revocation naming the carrier: %v, want 422", err)
	}
	for _, path := range []string{flightsKey, visitsKey} {
		if err := fetch(path); err != nil {
			t.Fatalf("%s after a forged revocation: %v", path, err)
		}
	}

	// The carrier's own: its key is withheld, the airline's is not.
	got, err := f.revoke(t, f.revocation(t, f.carrier, start.Add(time.Minute)), file)
	if err != nil || len(got.Resources) != 1 || got.Resources[0] != visitsKey {
		t.Fatalf("the carrier's revocation: %+v, %v", got, err)
	}
	if err := fetch(flightsKey); err != nil {
		t.Fatalf("the airline's key after the carrier revoked: %v", err)
	}
	if err := fetch(visitsKey); !errors.Is(err, ErrApprovalRevoked) || !strings.Contains(err.Error(), `"carrier"`) {
		t.Fatalf("the carrier's key after it revoked: %v", err)
	}

	// A broker holding only the airline's key keeps no carrier revocation.
	g := newRunFixture(t)
	if _, err := g.collab.Approve(g.carrier, start); err != nil {
		t.Fatal(err)
	}
	_, err = g.revoke(t, g.revocation(t, g.carrier, start.Add(time.Minute)), g.file(t))
	if !errors.As(err, &re) || re.Status != http.StatusNotFound || !strings.Contains(re.Detail, `holds no dataset key of "carrier"`) {
		t.Fatalf("a broker without the carrier's keys: %v, want 404", err)
	}
}

// TestRevocationRefusals: deliveries that do not parse, do not verify or
// are too large are refused with their own status, and keep nothing.
func TestRevocationRefusals(t *testing.T) {
	f := newRunFixture(t)
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	if _, err := f.collab.Approve(f.airline, start); err != nil {
		t.Fatal(err)
	}
	file := f.file(t)
	good := f.revocation(t, f.airline, start.Add(time.Minute))
	tampered := bytes.Replace(good, []byte("audit pending"), []byte("audit pendinG"), 1)
	other := newRunFixture(t)
	otherFile := other.file(t)
	brokenFile := bytes.Replace(file, []byte(`"min_distinct_identities": 10`), []byte(`"min_distinct_identities": 11`), 1)
	if bytes.Equal(brokenFile, file) {
		t.Fatal("nothing to break")
	}
	for _, tc := range []struct {
		name       string
		rev, file  []byte
		status     int
		detail     string
		rawRequest []byte
	}{
		{"tampered", tampered, file, 422, "signature invalid", nil},
		{"another collaboration", good, otherFile, 422, "is no version", nil},
		{"collaboration does not verify", good, brokenFile, 422, "does not verify", nil},
		{"truncated", nil, nil, 400, "", append(append([]byte(`{"revocation":`), good[:len(good)-3]...), `,"collaboration":{}}`...)},
		{"future", f.revocation(t, f.airline, time.Now().Add(time.Hour)), file, 400, "future", nil},
		{"oversized", nil, nil, 413, "", append([]byte(`{"revocation":`), bytes.Repeat([]byte(" "), maxRevocationRequest)...)},
		{"unknown field", nil, nil, 400, "unknown field", []byte(`{"revocation":{},"collaboration":{},"x":1}`)},
		{"missing collaboration", nil, nil, 400, "collaboration file", []byte(`{"revocation":{}}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.rawRequest != nil {
				resp, perr := f.srv.Client().Post(f.srv.URL+RevocationPath, "application/json", bytes.NewReader(tc.rawRequest))
				if perr != nil {
					t.Fatal(perr)
				}
				var p web.Problem
				json.NewDecoder(resp.Body).Decode(&p)
				resp.Body.Close()
				err = &web.RemoteError{Status: resp.StatusCode, Detail: p.Detail}
			} else {
				_, err = f.revoke(t, tc.rev, tc.file)
			}
			var re *web.RemoteError
			if !errors.As(err, &re) || re.Status != tc.status || !strings.Contains(re.Detail, tc.detail) {
				t.Fatalf("got %v, want %d %q", err, tc.status, tc.detail)
			}
		})
	}
	if got, err := f.store.ListRevocations(context.Background(), f.collab.ID, hex.EncodeToString(f.airline.Card().SigningKey), 0); err != nil || len(got) != 0 {
		t.Fatalf("ListRevocations: %v, %v", got, err)
	}
	// The run is still released: nothing was kept.
	if _, err := f.collab.Approve(f.carrier, start); err != nil {
		t.Fatal(err)
	}
	if _, err := f.session(t, 0x11, runContext(t, f.collab, "by_area")).ResourceFor(context.Background(), flightsKey, f.file(t)); err != nil {
		t.Fatalf("after refused deliveries: %v", err)
	}
}
