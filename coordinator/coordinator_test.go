package coordinator_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/coordinator"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/store/sqlite"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// fixture is a coordinator over a real store and log, served over HTTP,
// and a collaboration from collab's example manifest with fresh parties.
type fixture struct {
	srv    *httptest.Server
	client *coordinator.Client
	log    *auditlog.Log
	key    *auditlog.SignerKey
	col    *collab.Collaboration
	ids    map[string]*party.Identity
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the coordinator's configuration
// adjusted by adjust.
func newFixtureWith(t *testing.T, adjust func(*coordinator.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.New(ctx, sqlite.Config{Path: filepath.Join(dir, "kura.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _, err := auditlog.GenerateKey(auditlog.DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, auditlog.Config{Dir: filepath.Join(dir, "log"), Key: key, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	cfg := coordinator.Config{Store: st, Log: l, Nonces: st.Ephemeral()}
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := coordinator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ex := filepath.Join(dir, "example")
	if err := os.CopyFS(ex, os.DirFS("../collab/testdata/example")); err != nil {
		t.Fatal(err)
	}
	ids := map[string]*party.Identity{}
	for _, n := range []string{"airline", "carrier", "analyst"} {
		id, err := party.Generate(n, party.KEMX25519)
		if err != nil {
			t.Fatal(err)
		}
		card, err := id.Card().Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(ex, "cards", n+".json")
		os.Chmod(p, 0o644)
		if err := os.WriteFile(p, card, 0o644); err != nil {
			t.Fatal(err)
		}
		ids[n] = id
	}
	m, err := collab.LoadManifest(filepath.Join(ex, "manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	col, err := collab.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, client: &coordinator.Client{BaseURL: srv.URL, HTTP: srv.Client(), Identity: ids["airline"]}, log: l, key: key, col: col, ids: ids}
}

func (f *fixture) file(t *testing.T) []byte {
	t.Helper()
	data, err := f.col.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (f *fixture) approve(t *testing.T, name string) {
	t.Helper()
	if _, err := f.col.Approve(f.ids[name], t0); err != nil {
		t.Fatal(err)
	}
}

// put sends body to id's URL, signed by signer (nil: unsigned), and returns
// the status, problem type and detail.
func (f *fixture) put(t *testing.T, id string, body []byte, signer *party.Identity) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/v1/collaborations/"+id, bytes.NewReader(body))
	if signer != nil {
		httpsig.Sign(req, body, coordinator.SigningContext, signer.Card().Fingerprint, signer.Sign, time.Now())
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ Type, Detail string }
	json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, strings.TrimPrefix(p.Type, "https://kura.dev/problems/"), p.Detail
}

// TestPushAndGet: a new collaboration is stored and its version logged; an
// approval pushed later is logged once; pushing the same file again logs
// nothing; GET returns what was stored, and every proof verifies.
func TestPushAndGet(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	resp, err := f.client.Push(ctx, f.file(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Versions != 1 || resp.Approvals != 0 || len(resp.Logged) != 1 {
		t.Fatalf("first push: %+v", resp)
	}
	f.approve(t, "airline")
	f.approve(t, "carrier")
	resp, err = f.client.Push(ctx, f.file(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Versions != 1 || resp.Approvals != 2 || len(resp.Logged) != 2 {
		t.Fatalf("approvals push: %+v", resp)
	}
	for _, raw := range resp.Logged {
		p, err := auditlog.ParseProof(raw)
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
		if e.Kind != auditlog.KindApproval || e.Collaboration != f.col.ID {
			t.Errorf("logged %+v", e)
		}
	}
	again, err := f.client.Push(ctx, f.file(t))
	if err != nil || len(again.Logged) != 0 {
		t.Fatalf("same file again: %+v, %v", again, err)
	}
	got, err := f.client.Get(ctx, f.col.ID)
	if err != nil || !bytes.Equal(got, f.file(t)) {
		t.Fatalf("GET: %v; stored file differs: %v", err, !bytes.Equal(got, f.file(t)))
	}
}

// TestRefusals: what the coordinator must not accept, each with its status
// and problem type; the stored file is unchanged afterwards.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.approve(t, "airline")
	stored := f.file(t)
	if _, err := f.client.Push(ctx, stored); err != nil {
		t.Fatal(err)
	}

	resp, err := f.srv.Client().Get(f.srv.URL + "/v1/collaborations/no-such")
	if err != nil {
		t.Fatal(err)
	}
	var p struct{ Type string }
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.HasSuffix(p.Type, "/not-found") {
		t.Errorf("unknown collaboration: %d %s, want 404 not-found", resp.StatusCode, p.Type)
	}

	// An approval with a forged signature.
	forged := f.file(t)
	var doc map[string]any
	json.Unmarshal(forged, &doc)
	approvals := doc["approvals"].([]any)
	a := approvals[0].(map[string]any)
	sig, err := base64.StdEncoding.DecodeString(a["signature"].(string))
	if err != nil {
		t.Fatal(err)
	}
	sig[3] ^= 1
	a["signature"] = base64.StdEncoding.EncodeToString(sig)
	forged, _ = json.Marshal(doc)

	// The stored approval dropped.
	json.Unmarshal(stored, &doc)
	doc["approvals"] = []any{}
	dropped, _ := json.Marshal(doc)

	for _, tc := range []struct {
		name   string
		id     string
		body   []byte
		status int
		kind   string
		detail string
	}{
		{"not JSON", f.col.ID, []byte("{"), http.StatusBadRequest, "bad-request", "malformed collaboration file"},
		{"truncated", f.col.ID, stored[:len(stored)/2], http.StatusBadRequest, "bad-request", "malformed collaboration file"},
		{"another id in the URL", "other", stored, http.StatusConflict, "collaboration-refused", `the URL says "other"`},
		{"forged approval", f.col.ID, forged, http.StatusConflict, "collaboration-refused", "signature invalid"},
		{"approval dropped", f.col.ID, dropped, http.StatusConflict, "collaboration-refused", "drops 1 stored approval"},
		{"oversized", f.col.ID, bytes.Repeat([]byte(" "), collab.MaxCollaborationSize+1), http.StatusRequestEntityTooLarge, "too-large", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, kind, detail := f.put(t, tc.id, tc.body, f.ids["carrier"]); status != tc.status || kind != tc.kind || !strings.Contains(detail, tc.detail) {
				t.Errorf("got %d %s %q, want %d %s %q", status, kind, detail, tc.status, tc.kind, tc.detail)
			}
			got, err := f.client.Get(ctx, f.col.ID)
			if err != nil || !bytes.Equal(got, stored) {
				t.Errorf("stored file changed: %v", err)
			}
		})
	}
}

// TestOnlyPartiesPush: a collaboration id belongs to its parties. An
// unsigned push, a push signed by someone who is not a party (to create
// or to extend), a replayed push and a push whose body was swapped are
// refused with 401, and nothing is stored or logged.
func TestOnlyPartiesPush(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	outsider, err := party.Generate("outsider", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	file := f.file(t)
	for name, signer := range map[string]*party.Identity{"unsigned": nil, "not a party creates": outsider} {
		if status, kind, detail := f.put(t, f.col.ID, file, signer); status != http.StatusUnauthorized || kind != "unauthenticated" {
			t.Errorf("%s: %d %s %q, want 401 unauthenticated", name, status, kind, detail)
		}
	}
	if _, err := f.client.Get(ctx, f.col.ID); err == nil {
		t.Fatal("a refused push created the collaboration")
	}
	if _, err := f.client.Push(ctx, file); err != nil {
		t.Fatal(err)
	}
	f.approve(t, "carrier")
	next := f.file(t)
	if status, _, _ := f.put(t, f.col.ID, next, outsider); status != http.StatusUnauthorized {
		t.Errorf("an outsider extended the collaboration: %d", status)
	}
	// The analyst is a party of the first version: it may push.
	req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/v1/collaborations/"+f.col.ID, bytes.NewReader(next))
	httpsig.Sign(req, next, coordinator.SigningContext, f.ids["analyst"].Card().Fingerprint, f.ids["analyst"].Sign, time.Now())
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} { // the second is a replay
		req.Body = io.NopCloser(bytes.NewReader(next))
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("analyst push %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	swapped, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/v1/collaborations/"+f.col.ID, bytes.NewReader(file))
	httpsig.Sign(swapped, next, coordinator.SigningContext, f.ids["airline"].Card().Fingerprint, f.ids["airline"].Sign, time.Now())
	resp, err := f.srv.Client().Do(swapped)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a signature for another body: %d, want 401", resp.StatusCode)
	}
}

// TestRewrittenHistory: a version that differs from the stored one is
// refused, and the client reports it as a broken chain.
func TestRewrittenHistory(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.client.Push(ctx, f.file(t)); err != nil {
		t.Fatal(err)
	}
	other := newFixture(t) // same manifest, other parties: another history under the same id
	other.col.ID = f.col.ID
	data, err := other.col.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// f's airline, a party of the stored collaboration, pushes it.
	if _, err := f.client.Push(ctx, data); !errors.Is(err, collab.ErrBrokenChain) {
		t.Fatalf("rewritten history: %v, want ErrBrokenChain", err)
	}
}

// TestUnsafeAnalysisRefused: a version whose custom SQL would output an
// identity column is refused before it is stored or logged, whoever
// signed the push.
func TestUnsafeAnalysisRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if _, err := f.client.Push(ctx, f.file(t)); err != nil {
		t.Fatal(err)
	}
	stored := f.file(t)
	m, err := collab.ParseManifest(mustJSON(t, f.col.Current()))
	if err != nil {
		t.Fatal(err)
	}
	m.Previous = f.col.Current().Hash()
	m.Analyses = append(m.Analyses, collab.Analysis{ID: "phones", Kind: collab.KindSQL,
		SQL: "SELECT phone, count(*) AS n FROM passengers GROUP BY phone", Reads: []string{"passengers"}})
	if err := f.col.AddVersion(m); err != nil {
		t.Fatal(err)
	}
	status, kind, detail := f.put(t, f.col.ID, f.file(t), f.ids["airline"])
	if status != http.StatusBadRequest || kind != "unsafe-analysis" || !strings.Contains(detail, "phone") {
		t.Errorf("unsafe analysis: %d %s %q, want 400 unsafe-analysis naming phone", status, kind, detail)
	}
	if got, err := f.client.Get(ctx, f.col.ID); err != nil || !bytes.Equal(got, stored) {
		t.Errorf("stored file changed: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
