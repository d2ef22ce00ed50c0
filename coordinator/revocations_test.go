package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
)

// post sends a revocation's bytes to id's revocation URL and returns the
// status, problem type and detail.
func (f *fixture) post(t *testing.T, id string, body []byte) (int, string, string) {
	t.Helper()
	resp, err := f.srv.Client().Post(f.srv.URL+"/v1/collaborations/"+id+"/revocations", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Type, Detail string }
	json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, strings.TrimPrefix(p.Type, "https://kura.dev/problems/"), p.Detail
}

// TestRevocation: a party's revocation is verified against the stored
// collaboration, logged and added to the stored file; runs whose data
// owner revoked are refused (409 approval-revoked, naming the owner); a
// push that drops the revocation is refused; approving again restores.
func TestRevocation(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t, "airline", "carrier")
	an := f.col.Current().Analyses[0].ID
	f.client.Identity = f.ids["analyst"]
	if _, err := f.client.SubmitRun(ctx, f.col.ID, an); err != nil {
		t.Fatalf("before revoking: %v", err)
	}
	stale := f.file(t) // the airline's copy, without the revocation

	rev, err := f.col.Revoke(f.ids["airline"], t0.Add(time.Minute), "audit pending")
	if err != nil {
		t.Fatal(err)
	}
	data, err := rev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.client.Revoke(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Revocations != 1 || len(resp.Logged) != 1 {
		t.Fatalf("revoke: %+v", resp)
	}
	p, err := auditlog.ParseProof(resp.Logged[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.VerifyProof(p, f.key.Verifier()); err != nil {
		t.Fatal(err)
	}
	e, err := auditlog.ParseEntry(p.Entry)
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != auditlog.KindRevocation || e.Collaboration != f.col.ID || e.Party != f.ids["airline"].Card().Fingerprint ||
		e.Subject != "sha256:"+rev.Digest() || e.Version != 1 {
		t.Errorf("logged %+v", e)
	}
	// Delivered again: nothing new.
	if again, err := f.client.Revoke(ctx, data); err != nil || len(again.Logged) != 0 || again.Revocations != 1 {
		t.Errorf("delivered again: %+v, %v", again, err)
	}
	// The stored file holds it: kura collab pull shows the approval revoked.
	stored, err := f.client.Get(ctx, f.col.ID)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := collab.ParseCollaboration(stored)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Verify(); err != nil {
		t.Fatal(err)
	}
	for _, st := range sc.Status() {
		if want := map[string]collab.State{"airline": collab.Revoked, "carrier": collab.Approved}[st.Party]; want != "" && st.State != want {
			t.Errorf("%s: %s, want %s", st.Party, st.State, want)
		}
	}

	_, err = f.client.SubmitRun(ctx, f.col.ID, an)
	var re *web.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusConflict || !strings.HasSuffix(re.Type, "/approval-revoked") ||
		!strings.Contains(re.Detail, `party "airline" revoked its approval`) || !errors.Is(err, fault.Conflict) {
		t.Fatalf("a run after the airline revoked: %v, want 409 approval-revoked naming the airline", err)
	}

	// A copy without the revocation cannot replace the stored file.
	if status, kind, detail := f.put(t, f.col.ID, stale, f.ids["carrier"]); status != http.StatusConflict || kind != "collaboration-refused" || !strings.Contains(detail, "drops 1 stored revocation") {
		t.Errorf("push dropping the revocation: %d %s %q", status, kind, detail)
	}

	// The airline approves again, on the stored file, and pushes.
	if _, err := sc.Approve(f.ids["airline"], t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	next, err := sc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	f.client.Identity = f.ids["airline"]
	if _, err := f.client.Push(ctx, next); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.SubmitRun(ctx, f.col.ID, an); err != nil {
		t.Fatalf("after approving again: %v", err)
	}
}

// TestRevocationRefusals: revocations the coordinator must not accept, each
// with its status and problem type; the stored file is unchanged.
func TestRevocationRefusals(t *testing.T) {
	ctx := context.Background()
	f := newRunFixture(t, "airline")
	stored, err := f.client.Get(ctx, f.col.ID)
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(at time.Time) *collab.Revocation {
		t.Helper()
		r, err := f.col.Revoke(f.ids["airline"], at, "")
		if err != nil {
			t.Fatal(err)
		}
		f.col.Revocations = nil
		return r
	}
	marshal := func(r *collab.Revocation) []byte {
		b, _ := json.Marshal(r)
		return b
	}
	good := revoke(t0.Add(time.Minute))
	tampered := *good
	tampered.RevokedAt = tampered.RevokedAt.Add(time.Second)
	forged := *good // signed by the carrier, naming the airline
	msg, _ := forged.Message()
	forged.Signature = f.ids["carrier"].Sign(msg)
	other := *good
	other.Collaboration = "other"
	for _, tc := range []struct {
		name   string
		id     string
		body   []byte
		status int
		kind   string
		detail string
	}{
		{"not JSON", f.col.ID, []byte("{"), 400, "bad-request", "malformed revocation"},
		{"truncated", f.col.ID, marshal(good)[:40], 400, "bad-request", "malformed revocation"},
		{"tampered", f.col.ID, marshal(&tampered), 422, "bad-signature", "signature invalid"},
		{"signed by another party", f.col.ID, marshal(&forged), 422, "bad-signature", `by "airline"`},
		{"another id in the URL", "other", marshal(good), 409, "collaboration-refused", `the URL says "other"`},
		{"unknown collaboration", "other", marshal(&other), 404, "not-found", "no such collaboration"},
		{"future", f.col.ID, marshal(revoke(f.now.Add(time.Hour))), 400, "bad-request", "future"},
		{"oversized", f.col.ID, bytes.Repeat([]byte(" "), collab.MaxRevocationSize+1), 413, "too-large", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, kind, detail := f.post(t, tc.id, tc.body); status != tc.status || kind != tc.kind || !strings.Contains(detail, tc.detail) {
				t.Errorf("got %d %s %q, want %d %s %q", status, kind, detail, tc.status, tc.kind, tc.detail)
			}
			if got, err := f.client.Get(ctx, f.col.ID); err != nil || !bytes.Equal(got, stored) {
				t.Errorf("stored file changed: %v", err)
			}
		})
	}
}
