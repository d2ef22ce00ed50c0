package aggregator

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/mpc/prio"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/store"
)

// swap is an HTTP handler set once the servers' URLs are known.
type swap struct {
	mu sync.Mutex
	h  http.Handler
}

func (s *swap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	h := s.h
	s.mu.Unlock()
	h.ServeHTTP(w, r)
}

// env is a leader and a helper on loopback, with their identities and a
// collector's.
type env struct {
	leaderURL, helperURL string
	leaderH, helperH     *swap
	leaderID, helperID   *party.Identity
	collector            *party.Identity
	logs                 *bytes.Buffer
}

func newIdentity(t testing.TB, name string) *party.Identity {
	t.Helper()
	id, err := party.Generate(name, party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{leaderH: &swap{h: http.NotFoundHandler()}, helperH: &swap{h: http.NotFoundHandler()},
		leaderID: newIdentity(t, "leader org"), helperID: newIdentity(t, "helper org"), collector: newIdentity(t, "collector"),
		logs: &bytes.Buffer{}}
	for _, s := range []struct {
		h   *swap
		url *string
	}{{e.leaderH, &e.leaderURL}, {e.helperH, &e.helperURL}} {
		srv := httptest.NewServer(s.h)
		t.Cleanup(srv.Close)
		*s.url = srv.URL
	}
	return e
}

// task returns a new task (the leader's and the helper's copies) whose
// collector is collector.
func (e *env) task(t testing.TB, typ prio.Type, bits, length uint, minBatch uint64, collector *party.Identity) (leader, helper *Task) {
	t.Helper()
	pt, err := prio.NewTask(nil, typ, bits, length)
	if err != nil {
		t.Fatal(err)
	}
	leader = &Task{Prio: pt, LeaderURL: e.leaderURL, HelperURL: e.helperURL, Leader: e.leaderID.Card(), Helper: e.helperID.Card(),
		Collector: collector.Card(), MinBatchSize: minBatch, Role: RoleLeader}
	h := *leader
	h.Role = RoleHelper
	return leader, &h
}

// start builds both services for the tasks (leader copies first, then the
// helper copies, pairwise) and installs them.
func (e *env) start(t testing.TB, batch int, state [2]State, tasks ...*Task) (leader, helper *Service) {
	t.Helper()
	var lt, ht []*Task
	for i := 0; i < len(tasks); i += 2 {
		lt, ht = append(lt, tasks[i]), append(ht, tasks[i+1])
	}
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	var err error
	leader, err = New(context.Background(), Config{Tasks: lt, Identity: e.leaderID, BatchSize: batch, Logger: log, State: state[0]})
	if err != nil {
		t.Fatal(err)
	}
	helper, err = New(context.Background(), Config{Tasks: ht, Identity: e.helperID, BatchSize: batch, Logger: log, State: state[1]})
	if err != nil {
		t.Fatal(err)
	}
	e.leaderH.mu.Lock()
	e.leaderH.h = leader
	e.leaderH.mu.Unlock()
	e.helperH.mu.Lock()
	e.helperH.h = helper
	e.helperH.mu.Unlock()
	return leader, helper
}

func submit(t testing.TB, task *Task, ms ...prio.Measurement) {
	t.Helper()
	c := &Client{Task: task.Public()}
	n, err := c.Submit(context.Background(), ms)
	if err != nil || n != len(ms) {
		t.Fatalf("submit: %d of %d accepted: %v", n, len(ms), err)
	}
}

// upload sends reports as they are and returns the leader's answer.
func upload(t testing.TB, task *Task, reports ...Report) error {
	t.Helper()
	body, _ := jsonMarshal(UploadRequest{Reports: reports})
	var res UploadResponse
	return post(context.Background(), http.DefaultClient, task.LeaderURL+"/v1/prio/tasks/"+task.ID()+"/reports", body, "leader", nil, &res)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func report(t testing.TB, task *Task, m prio.Measurement) Report {
	t.Helper()
	c, err := prio.NewClient(task.Prio.Public())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReport(task, c, m)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAggregate: 200 sum reports and 150 histogram reports, submitted over
// HTTP to a leader that sends jobs of 64 to the helper, collect to the
// plaintext aggregate; the logs hold no share or key.
func TestAggregate(t *testing.T) {
	e := newEnv(t)
	sumL, sumH := e.task(t, prio.TypeSum, 16, 0, 200, e.collector)
	histL, histH := e.task(t, prio.TypeHistogram, 0, 10, 100, e.collector)
	leader, _ := e.start(t, 64, [2]State{}, sumL, sumH, histL, histH)
	r := rand.New(rand.NewPCG(1, 2))

	var wantSum uint64
	var ms []prio.Measurement
	for range 200 {
		v := r.Uint64N(1 << 16)
		wantSum += v
		ms = append(ms, prio.Sum(v))
	}
	submit(t, sumL, ms...)
	if agg, queued := leader.Reports(sumL.ID()); agg != 192 || queued != 8 {
		t.Errorf("before collection: %d aggregated, %d queued; want 192 (3 jobs of 64) and 8", agg, queued)
	}
	wantHist := make([]uint64, 10)
	ms = ms[:0]
	for range 150 {
		b := r.Uint64N(10)
		wantHist[b]++
		ms = append(ms, prio.Bucket(b))
	}
	submit(t, histL, ms...)

	res, err := Collect(context.Background(), nil, sumL.Public(), e.collector)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reports != 200 || !slices.Equal(res.Aggregate, []uint64{wantSum}) {
		t.Errorf("sum: %d reports, %v; want 200, [%d]", res.Reports, res.Aggregate, wantSum)
	}
	res, err = Collect(context.Background(), nil, histL.Public(), e.collector)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reports != 150 || !slices.Equal(res.Aggregate, wantHist) {
		t.Errorf("histogram: %d reports, %v; want 150, %v", res.Reports, res.Aggregate, wantHist)
	}
	for _, task := range []*Task{sumL, histL} {
		if strings.Contains(e.logs.String(), hex.EncodeToString(task.Prio.VerifyKey[:])) {
			t.Error("the logs hold a verify key")
		}
	}
}

// TestTampered: a report whose helper share (or leader share) was tampered
// with is aggregated by neither aggregator; the rest are.
func TestTampered(t *testing.T) {
	e := newEnv(t)
	l, h := e.task(t, prio.TypeSum, 8, 0, 10, e.collector)
	e.start(t, 0, [2]State{}, l, h)
	var reports []Report
	for i := range 10 {
		reports = append(reports, report(t, l, prio.Sum(uint64(i))))
	}
	badHelper := report(t, l, prio.Sum(200))
	badHelper.HelperShare[len(badHelper.HelperShare)-1] ^= 1
	badLeader := report(t, l, prio.Sum(100))
	badLeader.LeaderShare[0] ^= 1
	if err := upload(t, l, append(reports, badHelper, badLeader)...); err != nil {
		t.Fatal(err)
	}
	res, err := Collect(context.Background(), nil, l.Public(), e.collector)
	if err != nil {
		t.Fatal(err)
	}
	if res.Reports != 10 || res.Aggregate[0] != 45 {
		t.Errorf("%d reports, %v; want the 10 untampered ones, [45]", res.Reports, res.Aggregate)
	}
	for _, reason := range []string{RejectDecrypt, RejectInvalid} {
		if !strings.Contains(e.logs.String(), "reason="+reason) {
			t.Errorf("no rejection %q logged:\n%s", reason, e.logs)
		}
	}
}

// TestReplay: a report uploaded twice is refused the second time, by the
// leader; a job replayed to the helper (same request, or the same reports
// in a new signed job) does not count them again.
func TestReplay(t *testing.T) {
	e := newEnv(t)
	l, h := e.task(t, prio.TypeCount, 0, 0, 1, e.collector)
	_, helper := e.start(t, 1, [2]State{}, l, h)
	r := report(t, l, prio.Count(true))
	if err := upload(t, l, r); err != nil {
		t.Fatal(err)
	}
	err := upload(t, l, r)
	if !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "400") {
		t.Errorf("second upload: %v, want 400 ErrReplay", err)
	}

	// The leader (its key) sends the helper a job with a report the helper
	// has prepared: rejected as replayed, not counted.
	pt := l.Prio
	agg, _ := prio.NewAggregator(pt, 0)
	rs := prio.ReportShare{Task: pt.ID, Nonce: prio.Nonce(r.Nonce), Aggregator: 0, Public: r.PublicShare, Input: r.LeaderShare}
	b, _ := rs.MarshalBinary()
	_, prep, err := agg.PrepInit(b)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := jsonMarshal(AggregateRequest{Reports: []JobReport{{Nonce: r.Nonce, PublicShare: r.PublicShare, HelperShare: r.HelperShare, LeaderPrepShare: prep}}})
	var res AggregateResponse
	sign := func(req *http.Request) {
		httpsig.Sign(req, body, AggregateContext, e.leaderID.Card().Fingerprint, e.leaderID.Sign, time.Now())
	}
	if err := post(context.Background(), http.DefaultClient, e.helperURL+"/v1/prio/tasks/"+l.ID()+"/aggregate", body, "helper", sign, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Results) != 1 || res.Results[0].Rejected != RejectReplay {
		t.Errorf("replayed job: %+v, want rejected as %s", res.Results, RejectReplay)
	}
	if n, _ := helper.Reports(l.ID()); n != 1 {
		t.Errorf("helper counts %d reports, want 1", n)
	}
}

// TestAuth: only the task's collector collects and only its leader sends
// jobs; the collector of another task, another party and an unsigned
// request are refused (401).
func TestAuth(t *testing.T) {
	e := newEnv(t)
	other := newIdentity(t, "other collector")
	xl, xh := e.task(t, prio.TypeCount, 0, 0, 1, e.collector)
	yl, yh := e.task(t, prio.TypeCount, 0, 0, 1, other)
	e.start(t, 0, [2]State{}, xl, xh, yl, yh)
	submit(t, xl, prio.Count(true))
	submit(t, yl, prio.Count(true))
	for _, tc := range []struct {
		name string
		task *Task
		id   *party.Identity
	}{
		{"collector of Y collects X", xl, other},
		{"collector of X collects Y", yl, e.collector},
		{"the leader collects", xl, e.leaderID},
	} {
		_, err := Collect(context.Background(), nil, tc.task.Public(), tc.id)
		if fault.KindOf(err) != fault.Unauthenticated || !strings.Contains(err.Error(), "401") {
			t.Errorf("%s: %v, want 401", tc.name, err)
		}
	}
	for _, u := range []string{e.leaderURL + "/v1/prio/tasks/" + xl.ID() + "/collect", e.helperURL + "/v1/prio/tasks/" + xl.ID() + "/aggregate"} {
		res, err := http.Post(u, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("unsigned POST %s: %d, want 401", u, res.StatusCode)
		}
	}
	// A job signed by the collector, not the leader.
	body := []byte(`{"reports":[]}`)
	err := post(context.Background(), http.DefaultClient, e.helperURL+"/v1/prio/tasks/"+xl.ID()+"/aggregate", body, "helper", func(r *http.Request) {
		httpsig.Sign(r, body, AggregateContext, e.collector.Card().Fingerprint, e.collector.Sign, time.Now())
	}, &AggregateResponse{})
	if fault.KindOf(err) != fault.Unauthenticated {
		t.Errorf("job signed by the collector: %v, want 401", err)
	}
	// Reports go to the leader only.
	if err := upload(t, &Task{Prio: xh.Prio, LeaderURL: e.helperURL}, report(t, xl, prio.Count(true))); !errors.Is(err, ErrUnknownTask) {
		t.Errorf("upload to the helper: %v, want ErrUnknownTask", err)
	}
	// After all that, the real collector still collects X once.
	if res, err := Collect(context.Background(), nil, xl.Public(), e.collector); err != nil || res.Aggregate[0] != 1 {
		t.Errorf("collect X: %v %v", res, err)
	}
}

// TestMinBatchAndOnce: a batch below min_batch_size is not collected (the
// error gives both numbers); once collected, it is not collected again and
// takes no more reports.
func TestMinBatchAndOnce(t *testing.T) {
	e := newEnv(t)
	l, h := e.task(t, prio.TypeSum, 4, 0, 5, e.collector)
	e.start(t, 0, [2]State{}, l, h)
	submit(t, l, prio.Sum(1), prio.Sum(2), prio.Sum(3))
	_, err := Collect(context.Background(), nil, l.Public(), e.collector)
	if !errors.Is(err, ErrBatchTooSmall) || !strings.Contains(err.Error(), "3 reports") || !strings.Contains(err.Error(), "min_batch_size is 5") || !strings.Contains(err.Error(), "403") {
		t.Errorf("collect 3 of 5: %v", err)
	}
	submit(t, l, prio.Sum(4), prio.Sum(5))
	res, err := Collect(context.Background(), nil, l.Public(), e.collector)
	if err != nil || res.Reports != 5 || res.Aggregate[0] != 15 {
		t.Fatalf("collect 5: %+v %v", res, err)
	}
	if _, err := Collect(context.Background(), nil, l.Public(), e.collector); !errors.Is(err, ErrCollected) || !strings.Contains(err.Error(), "409") {
		t.Errorf("second collection: %v, want 409 ErrCollected", err)
	}
	if err := upload(t, l, report(t, l, prio.Sum(1))); !errors.Is(err, ErrCollected) {
		t.Errorf("upload after collection: %v, want ErrCollected", err)
	}
}

// TestRestart: nonces and the collected flag outlive the process (a new
// Service over the same State).
func TestRestart(t *testing.T) {
	e := newEnv(t)
	l, h := e.task(t, prio.TypeCount, 0, 0, 1, e.collector)
	state := [2]State{store.NewMemoryEphemeral(0, nil), store.NewMemoryEphemeral(0, nil)}
	e.start(t, 0, state, l, h)
	r := report(t, l, prio.Count(true))
	if err := upload(t, l, r); err != nil {
		t.Fatal(err)
	}
	e.start(t, 0, state, l, h) // restart: the aggregate is lost, not the nonces
	if err := upload(t, l, r); !errors.Is(err, ErrReplay) {
		t.Errorf("replay after restart: %v, want ErrReplay", err)
	}
	submit(t, l, prio.Count(false))
	if _, err := Collect(context.Background(), nil, l.Public(), e.collector); err != nil {
		t.Fatal(err)
	}
	e.start(t, 0, state, l, h)
	if _, err := Collect(context.Background(), nil, l.Public(), e.collector); !errors.Is(err, ErrCollected) {
		t.Errorf("collection after restart: %v, want ErrCollected", err)
	}
}

// TestLimits: bodies over the limits are refused with 413 before they are
// read; malformed uploads with 400.
func TestLimits(t *testing.T) {
	e := newEnv(t)
	l, h := e.task(t, prio.TypeCount, 0, 0, 1, e.collector)
	e.start(t, 0, [2]State{}, l, h)
	for _, tc := range []struct {
		path string
		size int
	}{{"/reports", MaxBody + 1}, {"/collect", MaxCollectBody + 1}} {
		u := e.leaderURL + "/v1/prio/tasks/" + l.ID() + tc.path
		res, err := http.Post(u, "application/json", bytes.NewReader(make([]byte, tc.size)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with %d bytes: %d, want 413", tc.path, tc.size, res.StatusCode)
		}
	}
	res, err := http.Post(e.helperURL+"/v1/prio/tasks/"+l.ID()+"/aggregate", "application/json", bytes.NewReader(make([]byte, MaxBody+1)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized job: %d, want 413", res.StatusCode)
	}
	many := make([]Report, MaxReportsPerUpload+1)
	for _, tc := range []struct {
		name string
		rs   []Report
	}{{"no reports", nil}, {"too many", many}, {"short nonce", []Report{{Nonce: []byte{1}, HelperShare: []byte{1}}}}} {
		if err := upload(t, l, tc.rs...); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", tc.name, err)
		}
	}
	if err := upload(t, &Task{Prio: &prio.Task{}, LeaderURL: e.leaderURL}, report(t, l, prio.Count(true))); !errors.Is(err, ErrUnknownTask) {
		t.Errorf("unknown task: %v", err)
	}
}

// TestTaskFile: task files round-trip; the public one has no verify key;
// an aggregator's file readable by others, a public file given to an
// aggregator, and an identity that is not the task's are refused.
func TestTaskFile(t *testing.T) {
	e := newEnv(t)
	l, _ := e.task(t, prio.TypeSumVec, 3, 4, 10, e.collector)
	data, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseTask(data)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(again, data) || got.Prio.VerifyKey != l.Prio.VerifyKey {
		t.Errorf("round trip differs:\n%s\n%s", data, again)
	}
	pub, _ := l.Public().Marshal()
	if bytes.Contains(pub, []byte("verify_key")) || bytes.Contains(pub, []byte(`"role"`)) {
		t.Errorf("public task file has a secret:\n%s", pub)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "leader.json")
	os.WriteFile(path, data, 0o644)
	if _, err := LoadTask(path); !errors.Is(err, keyfile.ErrInsecure) {
		t.Errorf("0644 task file: %v, want keyfile.ErrInsecure", err)
	}
	os.Chmod(path, 0o600)
	if _, err := LoadTask(path); err != nil {
		t.Errorf("0600 task file: %v", err)
	}
	os.WriteFile(path, pub, 0o600)
	if _, err := LoadTask(path); !errors.Is(err, ErrTaskFile) {
		t.Errorf("public file as an aggregator's: %v", err)
	}
	for name, edit := range map[string]func(string) string{
		"unknown field": func(s string) string { return strings.Replace(s, `"version"`, `"extra": 1, "version"`, 1) },
		"bad url":       func(s string) string { return strings.Replace(s, e.helperURL, "ftp://x", 1) },
		"bad type":      func(s string) string { return strings.Replace(s, `"sumvec"`, `"mean"`, 1) },
		"no verify key": func(s string) string { return strings.Replace(s, `"verify_key"`, `"verify_kex"`, 1) },
		"min batch 0":   func(s string) string { return strings.Replace(s, `"min_batch_size": 10`, `"min_batch_size": 0`, 1) },
	} {
		if _, err := ParseTask([]byte(edit(string(data)))); !errors.Is(err, ErrTaskFile) {
			t.Errorf("%s: %v, want ErrTaskFile", name, err)
		}
	}
	if _, err := New(context.Background(), Config{Tasks: []*Task{l}, Identity: e.helperID}); !errors.Is(err, ErrTaskFile) {
		t.Errorf("leader task with the helper's identity: %v", err)
	}
}

// FuzzParseTask: ParseTask never panics, and what it accepts marshals to
// a file it parses to the same task.
func FuzzParseTask(f *testing.F) {
	e := &env{leaderURL: "https://leader.example", helperURL: "https://helper.example",
		leaderID: newIdentity(f, "l"), helperID: newIdentity(f, "h"), collector: newIdentity(f, "c")}
	l, _ := e.task(f, prio.TypeHistogram, 0, 4, 3, e.collector)
	for _, task := range []*Task{l, l.Public()} {
		data, err := task.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		task, err := ParseTask(data)
		if err != nil {
			return
		}
		out, err := task.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseTask(out)
		if err != nil {
			t.Fatal(err)
		}
		out2, _ := again.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}
