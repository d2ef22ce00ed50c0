package agent_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kura-cc/kura/internal/httpsig"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/mpc/agent"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/scenario"
)

// world is a two-owner collaboration over the scenario's data: the
// airline's flights and the carrier's visits, sealed, with an analyst
// receiving results.
type world struct {
	dir     string
	files   *scenario.Files
	ids     map[string]*party.Identity
	local   map[string]agent.Dataset
	c       *collab.Collaboration
	manifst *collab.Manifest
}

const testAnalysis = "okinawa_by_prefecture"

func newWorld(t *testing.T, edit func(m *collab.Manifest)) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{dir: t.TempDir(), ids: map[string]*party.Identity{}, local: map[string]agent.Dataset{}}
	var err error
	if w.files, err = scenario.Generate(ctx, w.dir, scenario.Config{Rows: 10000, Seed: 5, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	w.files.Flights = onePrefecturePerPhone(t, w.files.Flights)
	stays := hotelStays(t, w.files.Visits)
	for _, name := range []string{"airline", "carrier", "hotel", "analyst"} {
		if w.ids[name], err = party.Generate(name, party.KEMX25519); err != nil {
			t.Fatal(err)
		}
	}
	m := &collab.Manifest{Format: collab.FormatVersion, ID: "airline-carrier-mpc",
		Parties: []collab.Party{
			{Name: "airline", Roles: []collab.Role{collab.RoleDataProvider}, Card: w.ids["airline"].Card()},
			{Name: "carrier", Roles: []collab.Role{collab.RoleDataProvider}, Card: w.ids["carrier"].Card()},
			{Name: "hotel", Roles: []collab.Role{collab.RoleDataProvider}, Card: w.ids["hotel"].Card()},
			{Name: "analyst", Roles: []collab.Role{collab.RoleAnalyst, collab.RoleResultReceiver}, Card: w.ids["analyst"].Card()},
		},
		Receivers: []string{"analyst"},
		Verifiers: []collab.Verifier{{Name: "v", JWKSURL: "https://verifier.example/.well-known/jwks.json"}},
	}
	m.Worker.ReferenceValues.Measurements = []appraisal.Measurement{{TEE: "snp", Name: "unused", Value: strings.Repeat("ab", 48)}}
	for _, ds := range []struct {
		id, owner, plain string
		schema           *table.Schema
		min              int
	}{{"flights", "airline", w.files.Flights, flightsSchema(), 10}, {"visits", "carrier", w.files.Visits, scenario.VisitsSchema(), 20}, {"stays", "hotel", stays, staysSchema(), 5}} {
		key := dataset.NewKey()
		sealed := filepath.Join(w.dir, ds.id+".kura")
		if _, err := dataset.SealFile(ctx, sealed, ds.plain, key, dataset.Header{DatasetID: ds.id, Format: "parquet", Schema: ds.schema.JSON()}, dataset.Options{}); err != nil {
			t.Fatal(err)
		}
		sum, size, err := dataset.FileSHA256(sealed)
		if err != nil {
			t.Fatal(err)
		}
		kid := key.ID()
		m.Datasets = append(m.Datasets, collab.Dataset{ID: ds.id, Owner: ds.owner, Location: sealed,
			OutputPolicy: collab.OutputPolicy{MinDistinctIdentities: ds.min},
			Descriptor: collab.Descriptor{Version: 1, DatasetID: ds.id, Owner: ds.owner, Format: "parquet", Schema: ds.schema,
				KeyID: hex.EncodeToString(kid[:]), SealedSHA256: sum, SealedSize: size,
				KeyBroker: collab.KeyBrokerRef{URL: "https://kbs." + ds.owner + ".example", Resource: ds.owner + "/dataset-key/" + ds.id, Version: 1}}})
		w.local[ds.owner] = agent.Dataset{ID: ds.id, Sealed: sealed, Key: key}
	}
	m.Analyses = []collab.Analysis{{ID: testAnalysis, Kind: collab.KindAggregate, Backend: collab.BackendMPC, Aggregate: &collab.Aggregate{
		From:     "flights",
		Joins:    []collab.Join{{Dataset: "visits", Left: "flights.phone", Right: "visits.phone"}},
		Where:    []collab.Filter{{Column: "visits.area", Op: "=", Value: "okinawa"}},
		GroupBy:  []string{"flights.home_prefecture"},
		Measures: []collab.Measure{{Func: collab.AggCountDistinctIdentities, Dataset: "visits", As: "visitors"}},
	}}}
	if edit != nil {
		edit(m)
	}
	if w.c, err = collab.New(m); err != nil {
		t.Fatal(err)
	}
	w.manifst = w.c.Current()
	for _, name := range []string{"airline", "carrier", "hotel", "analyst"} {
		w.approve(t, name)
	}
	return w
}

// staysSchema is a hotel's guests: a third owner, on the same phone
// numbers as the carrier's half of them.
func staysSchema() *table.Schema {
	return &table.Schema{Columns: []table.Column{
		{Name: "guest_id", Type: table.String, Identity: true},
		{Name: "phone", Type: table.String, Join: true},
		{Name: "nights", Type: table.Int64},
	}}
}

// hotelStays writes the hotel's stays: the carrier's subscribers whose
// number hashes even.
func hotelStays(t *testing.T, visits string) string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := filepath.Join(filepath.Dir(visits), "stays.parquet")
	q := fmt.Sprintf(`COPY (SELECT DISTINCT 'G' || subscriber_id AS guest_id, phone, CAST(1 + hash(phone) %% 7 AS BIGINT) AS nights FROM '%s' WHERE hash(phone) %% 2 = 0) TO '%s' (FORMAT parquet)`, visits, out)
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
	return out
}

func (w *world) approve(t *testing.T, name string) {
	t.Helper()
	if _, err := w.c.Approve(w.ids[name], time.Now()); err != nil {
		t.Fatal(err)
	}
}

// agent starts the named owner's agent with a fresh ledger.
func (w *world) agent(t *testing.T, name string) *agent.Agent {
	t.Helper()
	l, err := agent.OpenLedger(filepath.Join(t.TempDir(), name+".ledger"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	a, err := agent.New(agent.Config{Identity: w.ids[name], Datasets: []agent.Dataset{w.local[name]}, Ledger: l,
		Logger: slog.New(slog.DiscardHandler), Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// flightsSchema is the scenario's flights with the miles column
// onePrefecturePerPhone adds, for sums of the airline's own values.
func flightsSchema() *table.Schema {
	s := scenario.FlightsSchema()
	s.Columns = append(s.Columns, table.Column{Name: "miles", Type: table.Int64})
	return s
}

// onePrefecturePerPhone drops the rows of the few generated phone numbers
// (hash collisions) that belong to passengers of several prefectures: the
// agent counts each identifier in one group, chosen at random, which a
// plaintext join could not reproduce. It adds a miles column (an int64 of
// the airline's, for sums).
func onePrefecturePerPhone(t *testing.T, flights string) string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := strings.TrimSuffix(flights, ".parquet") + "-unique.parquet"
	q := fmt.Sprintf(`COPY (SELECT *, CAST(hash(member_id, flight_date) %% 2000 AS BIGINT) AS miles FROM '%[1]s' WHERE phone NOT IN (SELECT phone FROM (SELECT DISTINCT phone, home_prefecture FROM '%[1]s') GROUP BY phone HAVING count(*) > 1)) TO '%[2]s' (FORMAT parquet)`, flights, out)
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
	return out
}

// plaintext computes the analysis on the plaintext files, as a map from
// prefecture to distinct matched phones, with the same suppression.
func (w *world) plaintext(t *testing.T, min int) map[string]int64 {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var multi int
	q := fmt.Sprintf(`SELECT count(*) FROM (SELECT phone FROM (SELECT DISTINCT phone, home_prefecture FROM '%s') GROUP BY phone HAVING count(*) > 1)`, w.files.Flights)
	if err := db.QueryRow(q).Scan(&multi); err != nil || multi != 0 {
		t.Fatalf("test data: %d phones in several prefectures (%v): the expected counts would depend on the agent's choice", multi, err)
	}
	rows, err := db.Query(fmt.Sprintf(`SELECT f.home_prefecture, count(DISTINCT f.phone) FROM '%s' f JOIN (SELECT DISTINCT phone FROM '%s' WHERE area = 'okinawa') v ON f.phone = v.phone GROUP BY 1 HAVING count(DISTINCT f.phone) >= %d`, w.files.Flights, w.files.Visits, min))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = n
	}
	return out
}

// open verifies the bundle and receipt as the analyst and decodes the
// result's rows into prefecture → count.
func (w *world) open(t *testing.T, out *agent.Output) (map[string]int64, int) {
	t.Helper()
	ctx := context.Background()
	tr := result.Trust{Party: w.ids["analyst"].Card().SigningKey}
	vb, err := result.VerifyBundle(ctx, out.Bundle, tr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := result.VerifyReceipt(ctx, out.Receipt, vb, tr); err != nil {
		t.Fatal(err)
	}
	plain, err := vb.Open(w.ids["analyst"])
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Rows           [][]any `json:"rows"`
		SuppressedRows int     `json:"suppressed_rows"`
	}
	if err := json.Unmarshal(plain, &res); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range res.Rows {
		got[r[0].(string)] = int64(r[1].(float64))
	}
	return got, res.SuppressedRows
}

// recorder keeps every byte that crosses the wire to the responder.
type recorder struct {
	mu   sync.Mutex
	wire bytes.Buffer
	next http.Handler
	// tamper, when set, edits request bodies of PSI requests.
	tamperRequest func([]byte) []byte
	// tamperResponse edits PSI response bodies, tamperDecrypt the
	// answers to decryption requests.
	tamperResponse func([]byte) []byte
	tamperDecrypt  func([]byte) []byte
	// tamperHeader edits a request's headers, given its body.
	tamperHeader func(*http.Request, []byte)
	// tamperPaths is the path suffix whose requests tamperRequest and
	// tamperResponse edit: "/psi" unless set.
	tamperPaths string
	// starts keeps the Start bodies, psis the PSI requests, decrypts the
	// decryption requests; lastRun is the run id of the last request.
	starts, psis, decrypts [][]byte
	lastRun                string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	isPSI := strings.HasSuffix(req.URL.Path, r.tamperPaths)
	if isPSI && r.tamperRequest != nil {
		body = r.tamperRequest(body)
	}
	if r.tamperHeader != nil {
		r.tamperHeader(req, body)
	}
	r.mu.Lock()
	r.wire.Write(body)
	switch {
	case isPSI:
		r.psis = append(r.psis, body)
	case strings.HasSuffix(req.URL.Path, "/decrypt"):
		r.decrypts = append(r.decrypts, body)
		r.lastRun = strings.Split(req.URL.Path, "/")[4]
	default:
		r.starts = append(r.starts, body)
	}
	r.mu.Unlock()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	r.next.ServeHTTP(rec, req)
	out := rec.Body.Bytes()
	if isPSI && r.tamperResponse != nil && rec.Code == 200 {
		out = r.tamperResponse(out)
	}
	if strings.HasSuffix(req.URL.Path, "/decrypt") && r.tamperDecrypt != nil && rec.Code == 200 {
		out = r.tamperDecrypt(out)
	}
	r.mu.Lock()
	r.wire.Write(out)
	for k, v := range rec.Header() {
		r.wire.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	r.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(out)
}

func (w *world) serve(t *testing.T, a *agent.Agent) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{next: a.Handler(), tamperPaths: "/psi"}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv, rec
}

// phones reads the distinct phone numbers of a plaintext file.
func phones(t *testing.T, file string) []string {
	t.Helper()
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf("SELECT DISTINCT phone FROM '%s'", file))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestRunEqualsPlaintextJoin: a run between the two owners' agents over
// real HTTP releases exactly the plaintext join's counts after the same
// suppression, the analyst verifies and opens it, and nothing on the wire
// holds a raw identifier of either owner.
func TestRunEqualsPlaintextJoin(t *testing.T) {
	w := newWorld(t, nil)
	srv, rec := w.serve(t, w.agent(t, "carrier"))
	out, err := w.agent(t, "airline").Run(context.Background(), w.c, testAnalysis, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, suppressed := w.open(t, out)
	want := w.plaintext(t, 20)
	if len(want) == 0 || suppressed == 0 {
		t.Fatalf("test data: %d groups released, %d suppressed: want both", len(want), suppressed)
	}
	t.Logf("released %d groups, suppressed %d: %v", len(got), suppressed, got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("released %v\nplaintext join %v", got, want)
	}
	wire := rec.wire.Bytes()
	for _, f := range []string{w.files.Flights, w.files.Visits} {
		for _, p := range phones(t, f) {
			if bytes.Contains(wire, []byte(p)) || bytes.Contains(wire, []byte(strings.TrimPrefix(p, "+"))) {
				t.Fatalf("the wire holds the raw identifier %s", p)
			}
		}
	}
}

// TestTamperedAndReplayed: a flipped bit in the request or the response
// aborts the run; a replayed start or request is refused.
func TestTamperedAndReplayed(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, nil)
	flip := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }

	srv, rec := w.serve(t, w.agent(t, "carrier"))
	rec.tamperRequest = flip
	// Changed on the wire: its signature no longer verifies.
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL); !errors.Is(err, agent.ErrPeer) || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("tampered request: %v", err)
	}
	// Signed, but not the request the airline's statement names.
	rec.tamperHeader = func(r *http.Request, body []byte) {
		if strings.HasSuffix(r.URL.Path, "/psi") {
			httpsig.Sign(r, body, agent.SignatureContext, w.ids["airline"].Card().Fingerprint, w.ids["airline"].Sign, time.Now())
		}
	}
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL); !errors.Is(err, agent.ErrPeer) || !strings.Contains(err.Error(), "tampered") {
		t.Fatalf("request other than the signed statement's: %v", err)
	}
	rec.tamperHeader = nil
	rec.tamperRequest, rec.tamperResponse = nil, flip
	// The response fails to parse, or its digest is not the one the
	// responder signed: either way the run aborts.
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL); !errors.Is(err, agent.ErrTampered) && !errors.Is(err, agent.ErrMalformed) {
		t.Fatalf("tampered response: %v", err)
	}
	rec.tamperResponse = func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-40] ^= 1; return b } // inside the last element
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL); !errors.Is(err, agent.ErrTampered) && !errors.Is(err, agent.ErrMalformed) {
		t.Fatalf("tampered response element: %v", err)
	}
	rec.tamperResponse = nil
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL); err != nil {
		t.Fatal(err)
	}
	// Replays of the last run's messages.
	post := func(path string, body []byte) int {
		resp, err := http.Post(srv.URL+path, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := rec.starts[len(rec.starts)-1]
	if code := post("/v1/mpc/runs", start); code != http.StatusConflict {
		t.Fatalf("replayed start: %d, want 409", code)
	}
	var s agent.Start
	json.Unmarshal(start, &s)
	var st result.AgentStatement
	json.Unmarshal(s.Statement.Payload, &st)
	rc, _ := collab.ParseRunContext(st.Run)
	if code := post("/v1/mpc/runs/"+rc.RunID+"/psi", rec.psis[len(rec.psis)-1]); code != http.StatusNotFound {
		t.Fatalf("replayed request: %d, want 404", code)
	}
}

// TestRefusals: an analysis not approved for the mpc backend, a missing
// approval and a start signed by a party that does not own the dataset are
// refused by both agents.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	tee := newWorld(t, func(m *collab.Manifest) { m.Analyses[0].Backend = "" })
	srv, _ := tee.serve(t, tee.agent(t, "carrier"))
	if _, err := tee.agent(t, "airline").Run(ctx, tee.c, testAnalysis, srv.URL); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "tee backend, not mpc") {
		t.Fatalf("initiator, tee analysis: %v", err)
	}
	// The responder refuses it too, whatever the initiator's agent does: a
	// start for the tee analysis, signed by the airline.
	if code, body := forgeStart(t, tee, "airline", srv.URL); code != http.StatusForbidden || !strings.Contains(body, "not mpc") {
		t.Fatalf("responder, tee analysis: %d %s", code, body)
	}

	w := newWorld(t, nil)
	srv, _ = w.serve(t, w.agent(t, "carrier"))
	// The analyst signs a start as if it were the airline.
	if code, body := forgeStart(t, w, "analyst", srv.URL); code != http.StatusUnprocessableEntity || !strings.Contains(body, "signature") {
		t.Fatalf("start signed by another party: %d %s", code, body)
	}
	// The carrier's approval is missing from a new version.
	w.manifst = w.c.Current()
	m2 := *w.manifst
	m2.Description = "version 2"
	m2.Previous = w.manifst.Hash()
	if err := w.c.AddVersion(&m2); err != nil {
		t.Fatal(err)
	}
	w.approve(t, "airline")
	w.approve(t, "analyst")
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL); err != nil {
		t.Fatalf("a description change needs no new approval by the carrier: %v", err)
	}
	m3 := *w.c.Current()
	m3.Previous = m3.Hash()
	m3.Analyses = append([]collab.Analysis(nil), m3.Analyses...)
	m3.Analyses[0].Aggregate = &collab.Aggregate{From: "flights", Joins: m3.Analyses[0].Aggregate.Joins, GroupBy: m3.Analyses[0].Aggregate.GroupBy, Measures: m3.Analyses[0].Aggregate.Measures}
	if err := w.c.AddVersion(&m3); err != nil {
		t.Fatal(err)
	}
	w.approve(t, "airline")
	if _, err := w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL); !errors.Is(err, agent.ErrRefused) || !strings.Contains(err.Error(), "carrier") {
		t.Fatalf("without the carrier's approval of the changed analysis: %v", err)
	}
}

// forgeStart posts a Start for the world's analysis signed by the named
// party's key as the initiator, and returns the answer.
func forgeStart(t *testing.T, w *world, signer, url string) (int, string) {
	t.Helper()
	m := w.c.Current()
	rc := &collab.RunContext{Version: 1, Collaboration: m.ID, ManifestHash: m.Hash(), Analysis: testAnalysis,
		RunID: collab.NewRunID(), SigningKey: make([]byte, 32)}
	run, err := rc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	flights := m.Dataset("flights")
	id := w.ids[signer]
	env, err := result.SignAgent(&result.AgentStatement{Role: result.RoleInitiator, Run: run, Party: "airline",
		Dataset: "flights", SealedSHA256: flights.Descriptor.SealedSHA256, Session: strings.Repeat("ab", 32),
		RequestSHA256: strings.Repeat("cd", 32), SignedAt: time.Now().UTC()}, id)
	if err != nil {
		t.Fatal(err)
	}
	file, err := w.c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(agent.Start{Collaboration: file, Statement: env})
	resp, err := http.Post(url+"/v1/mpc/runs", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestPrivateRunsAndBudget: with privacy, the released counts are noisy
// (discrete Laplace at the analysis's ε), say how they were released, and
// each owner's agent charges its own dataset's budget: the third run of ε
// 0.5 against budgets of 1 is refused by the initiator's ledger, and by the
// responder's too when an initiator ignores its own.
func TestPrivateRunsAndBudget(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, func(m *collab.Manifest) {
		m.Datasets[0].OutputPolicy.PrivacyBudget = "1"
		m.Datasets[1].OutputPolicy.PrivacyBudget = "1"
		m.Analyses[0].Privacy = &collab.Privacy{Epsilon: "0.5"}
	})
	srv, _ := w.serve(t, w.agent(t, "carrier"))
	airline := w.agent(t, "airline")
	exact := w.plaintext(t, 0)
	for i := range 2 {
		out, err := airline.Run(ctx, w.c, testAnalysis, srv.URL)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		got, _ := w.open(t, out)
		if len(got) == 0 {
			t.Fatal("no group released")
		}
		for k, v := range got {
			if d := v - exact[k]; d > 40 || d < -40 {
				t.Errorf("group %s: released %d, exact %d: noise beyond 20 scales", k, v, exact[k])
			}
		}
		if p := out.Result.Privacy; p == nil || p.Epsilon != "0.5" || p.Unit != "flights.phone" {
			t.Fatalf("privacy release: %+v", p)
		}
	}
	_, err := airline.Run(ctx, w.c, testAnalysis, srv.URL)
	if !errors.Is(err, agent.ErrBudget) || !strings.Contains(err.Error(), `dataset "flights" has spent ε 1 of its budget 1 in 2 runs; this run needs 0.5`) {
		t.Fatalf("third run: %v", err)
	}
	_, err = w.agent(t, "airline").Run(ctx, w.c, testAnalysis, srv.URL) // a fresh ledger: the airline's agent forgot
	if !errors.Is(err, agent.ErrPeer) || !strings.Contains(err.Error(), `dataset "visits" has spent ε 1 of its budget 1 in 2 runs`) {
		t.Fatalf("third run against the carrier's ledger: %v", err)
	}
}

// TestSums: the sum and average of the carrier's values (each subscriber's
// total stay, clamped to the clip) and the sum of the airline's own (each
// passenger's miles) over the intersection, by the airline's dimension,
// travel encrypted under the agents' joint key and equal the plaintext
// computation; a tampered decryption answer aborts the run.
func TestSums(t *testing.T) {
	w := newWorld(t, func(m *collab.Manifest) {
		m.Analyses[0].Aggregate.Measures = append(m.Analyses[0].Aggregate.Measures,
			collab.Measure{Func: collab.AggSum, Column: "visits.stay_days", As: "stay", Clip: &collab.Clip{Min: 2, Max: 12}},
			collab.Measure{Func: collab.AggAvg, Column: "visits.stay_days", As: "avg_stay", Clip: &collab.Clip{Min: 2, Max: 12}},
			collab.Measure{Func: collab.AggSum, Column: "flights.miles", As: "miles", Clip: &collab.Clip{Min: 100, Max: 3000}})
	})
	srv, rec := w.serve(t, w.agent(t, "carrier"))
	out, err := w.agent(t, "airline").Run(context.Background(), w.c, testAnalysis, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := result.VerifyBundle(context.Background(), out.Bundle, result.Trust{Party: w.ids["analyst"].Card().SigningKey})
	if err != nil {
		t.Fatal(err)
	}
	opened, err := plain.Open(w.ids["analyst"])
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Rows [][]any }
	if err := json.Unmarshal(opened, &res); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf(`SELECT f.home_prefecture, count(*), sum(least(greatest(v.total, 2), 12)), avg(least(greatest(v.total, 2), 12)), sum(least(greatest(f.miles, 100), 3000))
FROM (SELECT phone, home_prefecture, sum(miles) AS miles FROM '%s' GROUP BY 1, 2) f
JOIN (SELECT phone, sum(stay_days) AS total FROM '%s' WHERE area = 'okinawa' GROUP BY phone) v ON f.phone = v.phone
GROUP BY 1 HAVING count(*) >= 20 ORDER BY 1`, w.files.Flights, w.files.Visits))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]string{}
	for rows.Next() {
		var k string
		var n, sum, miles int64
		var avg float64
		if err := rows.Scan(&k, &n, &sum, &avg, &miles); err != nil {
			t.Fatal(err)
		}
		want[k] = fmt.Sprint(n, sum, avg, miles)
	}
	got := map[string]string{}
	for _, r := range res.Rows {
		got[r[0].(string)] = fmt.Sprint(r[1], r[2], r[3], r[4])
	}
	t.Logf("released (visitors, stay, avg_stay, miles): %v", got)
	if len(want) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("released %v\nplaintext %v", got, want)
	}
	// A flipped bit in the partial decryptions, on the way back.
	rec.tamperResponse = nil
	rec.tamperDecrypt = func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-1] ^= 1; return b }
	if _, err := w.agent(t, "airline").Run(context.Background(), w.c, testAnalysis, srv.URL); !errors.Is(err, agent.ErrMalformed) && !errors.Is(err, agent.ErrTampered) {
		t.Fatalf("tampered decryption: %v", err)
	}
}

// TestBadMessages: the responder's endpoints refuse oversized, truncated,
// malformed and out-of-order messages with their status, and a PSI request
// whose framed values are not signed by the initiator.
func TestBadMessages(t *testing.T) {
	w := newWorld(t, func(m *collab.Manifest) {
		m.Analyses[0].Aggregate.Measures = append(m.Analyses[0].Aggregate.Measures,
			collab.Measure{Func: collab.AggSum, Column: "flights.miles", As: "miles", Clip: &collab.Clip{Min: 0, Max: 3000}})
	})
	srv, rec := w.serve(t, w.agent(t, "carrier"))
	post := func(path string, body []byte, hdr ...string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, tc := range map[string]struct {
		path string
		body []byte
		want int
	}{
		"oversized start": {"/v1/mpc/runs", bytes.Repeat([]byte(" "), 5<<20), http.StatusRequestEntityTooLarge},
		"truncated start": {"/v1/mpc/runs", []byte(`{"collaboration":`), http.StatusBadRequest},
		"empty start":     {"/v1/mpc/runs", []byte(`{}`), http.StatusBadRequest},
		"request, no run": {"/v1/mpc/runs/00112233445566778899aabbccddeeff/psi", []byte{1, 1, 3}, http.StatusNotFound},
		"decrypt, no run": {"/v1/mpc/runs/00112233445566778899aabbccddeeff/decrypt", []byte{0, 0, 0, 0}, http.StatusNotFound},
		"not a collab":    {"/v1/mpc/runs", []byte(`{"collaboration":{"kura_collaboration":9},"statement":{"payloadType":"x","payload":"","signatures":[]}}`), http.StatusBadRequest},
		"decrypt, bad id": {"/v1/mpc/runs/x/decrypt", nil, http.StatusNotFound},
	} {
		if got := post(tc.path, tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", name, got, tc.want)
		}
	}

	// Every request after Start signed by another party of the
	// collaboration (the analyst, with its own key), or not signed: the
	// responder refuses it (401) before it takes the run, and the run
	// aborts.
	for _, path := range []string{"/psi", "/decrypt"} {
		for _, signer := range []*party.Identity{w.ids["analyst"], nil} {
			rec.tamperHeader = func(r *http.Request, body []byte) {
				if !strings.HasSuffix(r.URL.Path, path) {
					return
				}
				r.Header.Del("Authorization")
				if signer != nil {
					httpsig.Sign(r, body, agent.SignatureContext, signer.Card().Fingerprint, signer.Sign, time.Now())
				}
			}
			_, err := w.agent(t, "airline").Run(context.Background(), w.c, testAnalysis, srv.URL)
			if !errors.Is(err, agent.ErrPeer) || !strings.Contains(err.Error(), "401") {
				t.Errorf("%s signed by %v: %v", path, signer, err)
			}
		}
	}
	rec.tamperHeader = nil
	// Decrypting twice: the second is refused.
	if _, err := w.agent(t, "airline").Run(context.Background(), w.c, testAnalysis, srv.URL); err != nil {
		t.Fatal(err)
	}
	id := rec.lastRun
	if code := post("/v1/mpc/runs/"+id+"/decrypt", rec.decrypts[len(rec.decrypts)-1]); code != http.StatusNotFound {
		t.Errorf("a second decryption: %d, want 404", code)
	}
}
