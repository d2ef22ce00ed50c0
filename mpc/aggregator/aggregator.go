package aggregator

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/mpc/prio"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/store"
)

// DefaultBatchSize is Config.BatchSize's default.
const DefaultBatchSize = 100

// Retention is how long an aggregator remembers a report nonce, and that
// a batch was collected.
const Retention = 400 * 24 * time.Hour

// State is where an aggregator remembers report nonces and collected
// batches across restarts (store.Ephemeral implements it, shared by
// replicas). It also keeps the nonces of signed requests.
type State interface {
	// Add records key unless it is there, and reports whether it was new.
	Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error)
	// Get reports whether key is there.
	Get(ctx context.Context, key string) ([]byte, bool, error)
}

// Config configures a Service.
type Config struct {
	// Tasks are the tasks this aggregator serves, each an aggregator's
	// task file (LoadTask). Required.
	Tasks []*Task
	// Identity is this aggregator's party: the leader signs its
	// aggregation jobs with it, the helper opens input shares with it. It
	// must be the leader's or the helper's card of every task, as the
	// task's role says. Required.
	Identity *party.Identity
	// State remembers nonces and collected batches (default: in memory,
	// forgotten on restart).
	State State
	// HTTP reaches the helper (default http.DefaultClient).
	HTTP *http.Client
	// BatchSize is how many reports the leader collects before it sends
	// them to the helper in one aggregation job (default
	// DefaultBatchSize); a collection first sends whatever is left.
	BatchSize int
	// Uploads bounds the request bodies held in memory at once (default:
	// a budget of its own of 16 MiB).
	Uploads *web.BodyBudget
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives every refusal and collection (default: discard).
	Logger *slog.Logger
}

// Service is one aggregator, leader or helper of each of its tasks, as an
// HTTP handler. It is safe for concurrent use.
type Service struct {
	tasks    map[string]*taskState
	identity *party.Identity
	state    State
	hc       *http.Client
	batch    int
	uploads  *web.BodyBudget
	now      func() time.Time
	log      *slog.Logger
	jobSig   *httpsig.Verifier
	collSig  *httpsig.Verifier
	mux      *http.ServeMux
}

// taskState is one task at this aggregator.
type taskState struct {
	task *Task
	agg  *prio.Aggregator
	id   uint8 // 0 leader, 1 helper

	// gate orders aggregation and collection: the leader's jobs and every
	// collection hold it; the helper's jobs share it.
	gate sync.RWMutex

	mu        sync.Mutex
	queue     []queued // leader: reports initialised, not yet sent to the helper
	collected bool
}

// queued is a report the leader has initialised.
type queued struct {
	pending *prio.Pending
	job     JobReport
}

// New returns the aggregator for cfg.Tasks. It refuses a task whose role
// does not match Identity, and reads from State which batches were
// collected.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.Identity == nil || len(cfg.Tasks) == 0 {
		return nil, errors.New("aggregator: Identity and at least one task are required")
	}
	s := &Service{tasks: map[string]*taskState{}, identity: cfg.Identity, state: cfg.State, hc: cfg.HTTP,
		batch: cmp.Or(cfg.BatchSize, DefaultBatchSize), uploads: cfg.Uploads, now: cfg.Now, log: cfg.Logger, mux: http.NewServeMux()}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.state == nil {
		s.state = store.NewMemoryEphemeral(0, s.now)
	}
	if s.hc == nil {
		s.hc = http.DefaultClient
	}
	if s.uploads == nil {
		s.uploads = web.NewBodyBudget(16 * MaxBody)
	}
	s.batch = min(max(s.batch, 1), MaxReportsPerJob)
	s.jobSig = &httpsig.Verifier{Context: AggregateContext, Nonces: s.state, Now: s.now}
	s.collSig = &httpsig.Verifier{Context: CollectContext, Nonces: s.state, Now: s.now}
	me := cfg.Identity.Card().Fingerprint
	for _, t := range cfg.Tasks {
		ts := &taskState{task: t}
		want := t.Leader
		if t.Role == RoleHelper {
			ts.id, want = 1, t.Helper
		}
		if t.Role == "" {
			return nil, fmt.Errorf("%w: task %s: a public task file; an aggregator needs its own", ErrTaskFile, t.ID())
		}
		if want.Fingerprint != me {
			return nil, fmt.Errorf("%w: task %s: this aggregator (%s, %s) is not the task's %s (%s, %s)",
				ErrTaskFile, t.ID(), cfg.Identity.Name(), me, t.Role, want.Name, want.Fingerprint)
		}
		if _, dup := s.tasks[t.ID()]; dup {
			return nil, fmt.Errorf("%w: task %s given twice", ErrTaskFile, t.ID())
		}
		agg, err := prio.NewAggregator(t.Prio, ts.id)
		if err != nil {
			return nil, fmt.Errorf("%w: task %s: %w", ErrTaskFile, t.ID(), err)
		}
		ts.agg = agg
		if _, ts.collected, err = s.state.Get(ctx, collectedKey(t)); err != nil {
			return nil, fmt.Errorf("aggregator: task %s: %w", t.ID(), err)
		}
		s.tasks[t.ID()] = ts
	}
	s.Register(s.mux)
	return s, nil
}

// Register mounts the aggregator's API on mux (docs/spec/prio.md §4).
func (s *Service) Register(mux *http.ServeMux) {
	mux.Handle("POST /v1/prio/tasks/{task}/reports", web.Handle(s.log, nil, s.uploads.Limit(MaxBody, s.upload)))
	mux.Handle("POST /v1/prio/tasks/{task}/aggregate", web.Handle(s.log, nil, s.uploads.Limit(MaxBody, s.aggregate)))
	mux.Handle("POST /v1/prio/tasks/{task}/collect", web.Handle(s.log, nil, s.uploads.Limit(MaxCollectBody, s.collect)))
}

// ServeHTTP serves the aggregator's API alone.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Reports returns how many reports of task (hex id) this aggregator has
// aggregated, and how many the leader holds not yet sent to the helper.
func (s *Service) Reports(task string) (aggregated uint64, queued int) {
	ts, ok := s.tasks[task]
	if !ok {
		return 0, 0
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.agg.Reports(), len(ts.queue)
}

func reportKey(t *Task, n prio.Nonce) string {
	return "prio-report/" + t.ID() + "/" + hex.EncodeToString(n[:])
}

func collectedKey(t *Task) string { return "prio-collected/" + t.ID() }

// task returns the request's task, which this aggregator must serve as
// role ("" for either).
func (s *Service) task(r *http.Request, role Role) (*taskState, error) {
	id := r.PathValue("task")
	ts, ok := s.tasks[id]
	if !ok {
		return nil, fmt.Errorf("%w: %.64q", ErrUnknownTask, id)
	}
	if role != "" && ts.task.Role != role {
		return nil, fmt.Errorf("%w: this aggregator is the %s of task %s, not its %s", ErrUnknownTask, ts.task.Role, id, role)
	}
	return ts, nil
}

// upload takes a client's reports (leader).
func (s *Service) upload(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.task(r, RoleLeader)
	if err != nil {
		return err
	}
	body, err := web.ReadBody(w, r, MaxBody)
	if err != nil {
		return err
	}
	var req UploadRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if n := len(req.Reports); n == 0 || n > MaxReportsPerUpload {
		return fmt.Errorf("%w: %d reports; an upload holds 1 to %d", ErrMalformed, n, MaxReportsPerUpload)
	}
	ctx := r.Context()
	var first error
	refused := 0
	for i, rep := range req.Reports {
		if err := s.accept(ctx, ts, rep); err != nil {
			s.log.InfoContext(ctx, "prio report refused", "task", ts.task.ID(), "report", i, "nonce", hex.EncodeToString(rep.Nonce), "reason", err)
			refused++
			if first == nil {
				first = err
			}
		}
	}
	ts.mu.Lock()
	full := len(ts.queue) >= s.batch
	ts.mu.Unlock()
	if full {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if err := s.flush(fctx, ts, false); err != nil {
			s.log.ErrorContext(ctx, "prio aggregation job failed; the reports stay queued", "task", ts.task.ID(), "err", err)
		}
		cancel()
	}
	if first != nil {
		return fmt.Errorf("%w (%d of %d reports refused, %d accepted)", first, refused, len(req.Reports), len(req.Reports)-refused)
	}
	return web.WriteJSON(w, http.StatusAccepted, UploadResponse{Accepted: len(req.Reports)})
}

// accept checks one report, initialises its preparation and queues it.
func (s *Service) accept(ctx context.Context, ts *taskState, rep Report) error {
	nonce, err := nonceOf(rep.Nonce)
	if err != nil {
		return err
	}
	if len(rep.HelperShare) == 0 {
		return fmt.Errorf("%w: no helper share", ErrMalformed)
	}
	if ts.isCollected() {
		return fmt.Errorf("%w: task %s takes no more reports", ErrCollected, ts.task.ID())
	}
	fresh, err := s.state.Add(ctx, reportKey(ts.task, nonce), nil, s.now().Add(Retention))
	if err != nil {
		return err
	}
	if !fresh {
		return fmt.Errorf("%w: nonce %x", ErrReplay, nonce)
	}
	rs := prio.ReportShare{Task: ts.task.Prio.ID, Nonce: nonce, Aggregator: 0, Public: rep.PublicShare, Input: rep.LeaderShare}
	b, err := rs.MarshalBinary()
	if err != nil {
		return classify(err)
	}
	pending, prep, err := ts.agg.PrepInit(b)
	if err != nil {
		return classify(err)
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.collected {
		return fmt.Errorf("%w: task %s takes no more reports", ErrCollected, ts.task.ID())
	}
	ts.queue = append(ts.queue, queued{pending: pending,
		job: JobReport{Nonce: rep.Nonce, PublicShare: rep.PublicShare, HelperShare: rep.HelperShare, LeaderPrepShare: prep}})
	return nil
}

func (ts *taskState) isCollected() bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.collected
}

// flush sends the queued reports to the helper, in jobs of at most
// BatchSize reports: while a whole batch is queued, or all of them.
func (s *Service) flush(ctx context.Context, ts *taskState, all bool) error {
	ts.gate.Lock()
	defer ts.gate.Unlock()
	return s.flushLocked(ctx, ts, all)
}

// flushLocked is flush with ts.gate held.
func (s *Service) flushLocked(ctx context.Context, ts *taskState, all bool) error {
	for {
		ts.mu.Lock()
		n := len(ts.queue)
		if n == 0 || (!all && n < s.batch) {
			ts.mu.Unlock()
			return nil
		}
		// A job holds at most BatchSize reports and fits in MaxBody.
		size, k := 0, 0
		for k < min(n, s.batch) {
			j := ts.queue[k].job
			size += 4*(len(j.Nonce)+len(j.PublicShare)+len(j.HelperShare)+len(j.LeaderPrepShare))/3 + 128
			if k > 0 && size > MaxBody*9/10 {
				break
			}
			k++
		}
		chunk := ts.queue[:k:k]
		ts.queue = ts.queue[k:]
		ts.mu.Unlock()
		if err := s.runJob(ctx, ts, chunk); err != nil {
			if !errors.Is(err, errDropped) {
				ts.mu.Lock()
				ts.queue = append(chunk, ts.queue...)
				ts.mu.Unlock()
			}
			return err
		}
	}
}

// errDropped marks a job the helper answered with a malformed answer: it
// may have prepared the reports, so they are not sent again. A job it did
// not answer, or refused as a whole, is sent again.
var errDropped = errors.New("job dropped")

// runJob sends one aggregation job to the helper and finishes the reports
// it prepared.
func (s *Service) runJob(ctx context.Context, ts *taskState, chunk []queued) error {
	req := AggregateRequest{Reports: make([]JobReport, len(chunk))}
	for i, q := range chunk {
		req.Reports[i] = q.job
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var res AggregateResponse
	err = post(ctx, s.hc, endpoint(ts.task.HelperURL, "/v1/prio/tasks/"+ts.task.ID()+"/aggregate"), body, "helper", func(r *http.Request) {
		httpsig.Sign(r, body, AggregateContext, s.identity.Card().Fingerprint, s.identity.Sign, s.now())
	}, &res)
	if errors.Is(err, errBadAnswer) {
		s.log.ErrorContext(ctx, "prio helper answered a job with a malformed answer; the job's reports are dropped", "task", ts.task.ID(), "err", err)
		return fmt.Errorf("%w: %w: %w", ErrHelper, errDropped, err)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHelper, err)
	}
	if len(res.Results) != len(chunk) {
		s.log.ErrorContext(ctx, "prio helper answered a job with the wrong number of results; the job's reports are dropped",
			"task", ts.task.ID(), "reports", len(chunk), "results", len(res.Results))
		return fmt.Errorf("%w: %w: %d results for %d reports", ErrHelper, errDropped, len(res.Results), len(chunk))
	}
	for i, q := range chunk {
		r := res.Results[i]
		nonce := hex.EncodeToString(q.job.Nonce)
		switch {
		case !bytes.Equal(r.Nonce, q.job.Nonce):
			s.log.ErrorContext(ctx, "prio report dropped: the helper's result names another report", "task", ts.task.ID(), "nonce", nonce)
		case r.Rejected != "":
			s.log.InfoContext(ctx, "prio report rejected by the helper", "task", ts.task.ID(), "nonce", nonce, "reason", r.Rejected)
		default:
			if err := ts.agg.PrepNext(q.pending, r.PrepMessage); err != nil {
				s.log.ErrorContext(ctx, "prio report dropped: the helper's prep message does not finish it", "task", ts.task.ID(), "nonce", nonce, "err", err)
			}
		}
	}
	return nil
}

// aggregate runs an aggregation job for the leader (helper).
func (s *Service) aggregate(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.task(r, RoleHelper)
	if err != nil {
		return err
	}
	body, err := web.ReadBody(w, r, MaxBody)
	if err != nil {
		return err
	}
	if _, err := s.jobSig.Verify(r, body, cardKey(ts.task.Leader)); err != nil {
		return fmt.Errorf("aggregation job for task %s: only its leader %s may send one: %w", ts.task.ID(), ts.task.Leader.Fingerprint, err)
	}
	var req AggregateRequest
	if err := decodeJSON(body, &req); err != nil {
		return err
	}
	if n := len(req.Reports); n == 0 || n > MaxReportsPerJob {
		return fmt.Errorf("%w: %d reports; a job holds 1 to %d", ErrMalformed, n, MaxReportsPerJob)
	}
	ts.gate.RLock()
	defer ts.gate.RUnlock()
	if ts.isCollected() {
		return fmt.Errorf("%w: task %s takes no more reports", ErrCollected, ts.task.ID())
	}
	ctx := r.Context()
	res := AggregateResponse{Results: make([]JobResult, len(req.Reports))}
	for i, jr := range req.Reports {
		msg, reason, err := s.prepare(ctx, ts, jr)
		if reason == "" && err != nil {
			return err // the state store failed: the leader sends the job again
		}
		res.Results[i] = JobResult{Nonce: jr.Nonce, PrepMessage: msg, Rejected: reason}
		if reason != "" {
			s.log.InfoContext(ctx, "prio report rejected", "task", ts.task.ID(), "nonce", hex.EncodeToString(jr.Nonce), "reason", reason, "err", err)
		}
	}
	return web.WriteJSON(w, http.StatusOK, res)
}

// prepare runs the helper's whole preparation of one report and returns
// its prep message, or the reason it rejects it.
func (s *Service) prepare(ctx context.Context, ts *taskState, jr JobReport) (msg []byte, reason string, err error) {
	nonce, err := nonceOf(jr.Nonce)
	if err != nil {
		return nil, RejectMalformed, err
	}
	fresh, err := s.state.Add(ctx, reportKey(ts.task, nonce), nil, s.now().Add(Retention))
	if err != nil {
		return nil, "", err
	}
	if !fresh {
		return nil, RejectReplay, ErrReplay
	}
	input, err := s.identity.Open(jr.HelperShare, HelperShareInfo(ts.task.Prio.ID, nonce, jr.PublicShare))
	if err != nil {
		return nil, RejectDecrypt, err
	}
	rs := prio.ReportShare{Task: ts.task.Prio.ID, Nonce: nonce, Aggregator: 1, Public: jr.PublicShare, Input: input}
	b, err := rs.MarshalBinary()
	if err != nil {
		return nil, RejectMalformed, err
	}
	pending, prep, err := ts.agg.PrepInit(b)
	if err != nil {
		return nil, rejectReason(err), err
	}
	msg, err = ts.agg.PrepSharesToPrep(jr.LeaderPrepShare, prep)
	if err != nil {
		return nil, rejectReason(err), err
	}
	if err := ts.agg.PrepNext(pending, msg); err != nil {
		return nil, rejectReason(err), err
	}
	return msg, "", nil
}

func rejectReason(err error) string {
	switch {
	case errors.Is(err, prio.ErrInvalidReport):
		return RejectInvalid
	case errors.Is(err, prio.ErrReplay):
		return RejectReplay
	}
	return RejectMalformed
}

// collect answers the collector with this aggregator's aggregate share,
// once, and only of at least MinBatchSize reports.
func (s *Service) collect(w http.ResponseWriter, r *http.Request) error {
	ts, err := s.task(r, "")
	if err != nil {
		return err
	}
	body, err := web.ReadBody(w, r, MaxCollectBody)
	if err != nil {
		return err
	}
	t := ts.task
	if _, err := s.collSig.Verify(r, body, cardKey(t.Collector)); err != nil {
		return fmt.Errorf("collection of task %s: only its collector %s may collect: %w", t.ID(), t.Collector.Fingerprint, err)
	}
	ctx := r.Context()
	ts.gate.Lock()
	defer ts.gate.Unlock()
	if ts.isCollected() {
		return fmt.Errorf("%w: task %s", ErrCollected, t.ID())
	}
	if err := s.flushLocked(ctx, ts, true); err != nil {
		return err
	}
	if n := ts.agg.Reports(); n < t.MinBatchSize {
		return fmt.Errorf("%w: task %s has %d reports aggregated; its min_batch_size is %d", ErrBatchTooSmall, t.ID(), n, t.MinBatchSize)
	}
	fresh, err := s.state.Add(ctx, collectedKey(t), nil, s.now().Add(Retention))
	if err != nil {
		return err
	}
	ts.mu.Lock()
	ts.collected = true
	ts.mu.Unlock()
	if !fresh {
		return fmt.Errorf("%w: task %s (before a restart)", ErrCollected, t.ID())
	}
	// Reports accepted while the first flush ran go in too: no upload is
	// accepted from here on.
	if err := s.flushLocked(ctx, ts, true); err != nil {
		return err
	}
	share, err := ts.agg.AggregateShare()
	if err != nil {
		return err
	}
	n := ts.agg.Reports()
	sealed, err := t.Collector.SealTo(share, AggregateShareInfo(t.Prio.ID, ts.id))
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "prio batch collected", "task", t.ID(), "role", t.Role, "reports", n, "collector", t.Collector.Fingerprint)
	return web.WriteJSON(w, http.StatusOK, CollectResponse{TaskID: t.ID(), Aggregator: ts.id, Reports: n, AggregateShare: sealed})
}

// cardKey accepts card's signing key, named by its fingerprint, only.
func cardKey(card *party.Card) func(string) (ed25519.PublicKey, bool) {
	return func(id string) (ed25519.PublicKey, bool) {
		if id != card.Fingerprint {
			return nil, false
		}
		return ed25519.PublicKey(card.SigningKey), true
	}
}

// post sends body to url, signed by sign, and decodes a 2xx JSON answer
// into out. A problem answer becomes an error wrapping this package's
// sentinel for its code, else its kind (web.RemoteError); a 2xx answer
// that does not decode wraps errBadAnswer.
func post(ctx context.Context, hc *http.Client, url string, body []byte, service string, sign func(*http.Request), out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTaskFile, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sign != nil {
		sign(req)
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxBody+1))
	if err != nil {
		return fmt.Errorf("%s: %w", service, err)
	}
	if res.StatusCode/100 != 2 {
		re := web.ReadProblem(service, res.StatusCode, data)
		if s := sentinelFor(trimType(re.Type)); s != nil {
			return fmt.Errorf("%w: %w", s, re)
		}
		return re
	}
	if len(data) > MaxBody {
		return fmt.Errorf("%s: %w: %w: answer larger than %d bytes", service, ErrMalformed, errBadAnswer, MaxBody)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: %w: %w: %w", service, ErrMalformed, errBadAnswer, err)
	}
	return nil
}

// errBadAnswer marks a 2xx answer that does not decode.
var errBadAnswer = errors.New("malformed answer")

func trimType(t string) string {
	if len(t) > len(web.ProblemTypeBase) && t[:len(web.ProblemTypeBase)] == web.ProblemTypeBase {
		return t[len(web.ProblemTypeBase):]
	}
	return ""
}
