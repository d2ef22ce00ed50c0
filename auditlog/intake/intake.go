// Package intake is the transparency log's write API for other parties:
// clean-room workers post signed run starts, result bundles and deletion
// receipts, and sealers post time-lock registrations; each is answered with
// the inclusion proof of its log entry (docs/spec/cleanroom.md,
// docs/spec/timelock.md, docs/spec/auditlog.md §7). Logged bundles and
// receipts are kept, proof embedded, in a blob store and served by the
// SHA-256 of their payload.
//
// # Security model
//
// The intake logs digests, never contents, and accepts only envelopes whose
// signature verifies with the signing key of the run context they carry:
// whoever posts cannot attribute a file to a run it did not sign. It does
// not judge whether the run was attested or approved — receivers and
// auditors check that offline. A bundle is sealed to its receivers and a
// receipt holds digests, so the archive holds nothing in the clear.
package intake

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/privacy"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/timelock"
)

// ErrRefused means a posted file is not a signed result bundle, receipt,
// run start or time-lock registration of the kind its route takes. The
// HTTP API answers 400 bad-request.
var ErrRefused = fault.New(nil, fault.BadRequest, "not a signed result bundle, receipt, time-lock registration or inference build approval")

// Log is the transparency log the intake appends to (*auditlog.Log
// implements it).
type Log interface {
	AppendAndProve(ctx context.Context, e *auditlog.Entry) (*auditlog.Proof, error)
}

// RunRecorder counts finished runs by the outcome their receipts state
// ("completed" or "failed").
type RunRecorder interface {
	RunFinished(outcome string)
}

// Config configures an Intake.
type Config struct {
	// Log receives the entries. Required.
	Log Log
	// Archive keeps logged bundles and receipts. Required.
	Archive blob.Store
	// Runs, if set, counts runs by the outcome of their receipts.
	Runs RunRecorder
	// Uploads bounds the request bodies held in memory at once (default:
	// a budget of its own of result.MaxSize).
	Uploads *web.BodyBudget
	// Uploader authenticates a sealed dataset's upload and names who
	// sent it; nil takes no uploads (datasets are still served).
	Uploader func(r *http.Request) (string, error)
	// MaxDataset bounds one uploaded sealed file (default
	// DefaultMaxDataset).
	MaxDataset int64
	// Now is the clock stamped on entries (default time.Now).
	Now func() time.Time
	// Logger receives request failures (default: discard).
	Logger *slog.Logger
}

// Intake is the log's write API. It is safe for concurrent use.
type Intake struct {
	log     Log
	archive blob.Store
	runs    RunRecorder
	uploads *web.BodyBudget
	// uploader and maxDataset govern sealed dataset uploads.
	uploader   func(r *http.Request) (string, error)
	maxDataset int64
	now        func() time.Time
	slog       *slog.Logger
	// locks serialise the check-append-record of one digest (striped).
	locks [64]sync.Mutex
}

// New returns an intake.
func New(cfg Config) (*Intake, error) {
	if cfg.Log == nil || cfg.Archive == nil {
		return nil, errors.New("intake: Log and Archive are required")
	}
	in := &Intake{log: cfg.Log, archive: cfg.Archive, runs: cfg.Runs, uploads: cfg.Uploads, now: cfg.Now, slog: cfg.Logger,
		uploader: cfg.Uploader, maxDataset: cmp.Or(cfg.MaxDataset, DefaultMaxDataset)}
	if in.uploads == nil {
		in.uploads = web.NewBodyBudget(result.MaxSize)
	}
	if in.now == nil {
		in.now = time.Now
	}
	if in.slog == nil {
		in.slog = slog.New(slog.DiscardHandler)
	}
	return in, nil
}

// routes maps each kind the intake takes to its route.
var routes = map[auditlog.Kind]string{
	auditlog.KindRunStart:             "/v1/cleanroom/runs",
	auditlog.KindResult:               "/v1/cleanroom/results",
	auditlog.KindReceipt:              "/v1/cleanroom/receipts",
	auditlog.KindTimelockRegistration: "/v1/timelock/registrations",
	auditlog.KindInferenceBuild:       "/v1/inference/builds",
}

// Bodies the intake reads, by kind: what each can legitimately carry
// (docs/spec/auditlog.md §7). A run start holds a run context; a receipt
// digests, evidence, a token and the collaboration file (at most
// collab.MaxCollaborationSize), base64 in an envelope; a result bundle is
// bounded by result.MaxSize.
const (
	MaxRunStartSize = 64 << 10
	MaxReceiptSize  = 8 << 20
)

var limits = map[auditlog.Kind]int64{
	auditlog.KindRunStart:             MaxRunStartSize,
	auditlog.KindResult:               result.MaxSize,
	auditlog.KindReceipt:              MaxReceiptSize,
	auditlog.KindTimelockRegistration: timelock.MaxRegistrationSize,
	auditlog.KindInferenceBuild:       trust.MaxBuildSize,
}

// Register mounts the intake's routes on mux: POST of each kind, GET
// /v1/cleanroom/results/{digest} and /v1/cleanroom/receipts/{digest} for
// the archive, and GET (with an Uploader, PUT) /v1/datasets/{digest} for
// sealed datasets.
func (in *Intake) Register(mux *http.ServeMux) {
	h := func(f web.HandlerFunc) http.Handler { return web.Handle(in.slog, nil, f) }
	post := func(kind auditlog.Kind, f web.HandlerFunc) {
		mux.Handle("POST "+routes[kind], h(in.uploads.Limit(limits[kind], f)))
	}
	for _, kind := range []auditlog.Kind{auditlog.KindRunStart, auditlog.KindResult, auditlog.KindReceipt} {
		post(kind, in.envelope(kind))
	}
	post(auditlog.KindTimelockRegistration, in.timelock)
	post(auditlog.KindInferenceBuild, in.inferenceBuild)
	mux.Handle("GET /v1/cleanroom/results/{digest}", h(in.archived("results")))
	mux.Handle("GET /v1/cleanroom/receipts/{digest}", h(in.archived("receipts")))
	mux.Handle("GET /v1/datasets/{digest}", h(in.getDataset))
	if in.uploader != nil {
		mux.Handle("PUT /v1/datasets/{digest}", h(in.putDataset))
	}
}

var errBadDigest = fault.New(nil, fault.BadRequest, "want the SHA-256 of the payload as 64 lower-case hex digits")

// envelope logs a signed run start, result bundle or receipt.
func (in *Intake) envelope(kind auditlog.Kind) web.HandlerFunc {
	want := map[auditlog.Kind]string{auditlog.KindResult: result.BundleType, auditlog.KindReceipt: result.ReceiptType, auditlog.KindRunStart: result.RunStartType}[kind]
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(w, r, limits[kind])
		if err != nil {
			return err
		}
		f, err := result.ParseFile(body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		rc, err := result.CheckSigned(f)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRefused, err)
		}
		if f.Envelope.PayloadType != want {
			return fmt.Errorf("%w: payload type %s does not belong here", ErrRefused, f.Envelope.PayloadType)
		}
		digest := result.DigestHex(f.Envelope.Payload)
		subject := "sha256:" + digest
		if kind == auditlog.KindRunStart {
			subject = "sha256:" + rc.ManifestHash // a run start names the manifest it executes
		}
		e := &auditlog.Entry{Kind: kind, Time: in.now().UTC(), Collaboration: rc.Collaboration, Run: rc.RunID, Subject: subject}
		if kind == auditlog.KindResult {
			e.Analysis, e.Epsilon = agentsSpend(f, rc)
		}
		return in.logOnce(w, r, kind, digest, func(p *auditlog.Proof) error {
			switch kind {
			case auditlog.KindResult:
				return in.keep(r.Context(), "results", f, p)
			case auditlog.KindReceipt:
				if err := in.keep(r.Context(), "receipts", f, p); err != nil {
					return err
				}
				in.countRun(f)
			}
			return nil
		}, e)
	}
}

// agentsSpend returns, for the result bundle of a run on the cryptographic
// backend, its analysis and the ε its agents' statements say they charged
// (empty when none or when they disagree); "", "" for a TEE run, whose
// spends are in its key_release entries.
func agentsSpend(f *result.File, rc *collab.RunContext) (analysis, epsilon string) {
	var b struct {
		Agents []*result.Envelope `json:"agents"`
	}
	if json.Unmarshal(f.Envelope.Payload, &b) != nil || len(b.Agents) == 0 {
		return "", ""
	}
	for i, a := range b.Agents {
		var s struct {
			Epsilon string `json:"epsilon"`
		}
		if a == nil || json.Unmarshal(a.Payload, &s) != nil || i > 0 && s.Epsilon != epsilon {
			return rc.Analysis, ""
		}
		epsilon = s.Epsilon
	}
	if e, err := privacy.ParseEpsilon(epsilon); err != nil || e.Sign() <= 0 {
		epsilon = ""
	}
	return rc.Analysis, epsilon
}

// logOnce appends e unless a submission of kind with the same payload
// digest was logged before, in which case it answers with that entry's
// proof: a replayed file adds nothing to the log. kept runs after a fresh
// append, before the proof is recorded as the digest's.
func (in *Intake) logOnce(w http.ResponseWriter, r *http.Request, kind auditlog.Kind, digest string, kept func(*auditlog.Proof) error, e *auditlog.Entry) error {
	mu := &in.locks[digest[0]%byte(len(in.locks))]
	mu.Lock()
	defer mu.Unlock()
	key := "logged/" + string(kind) + "/" + digest + ".json"
	if rc, err := in.archive.Get(r.Context(), key); err == nil {
		defer rc.Close()
		w.Header().Set("Content-Type", "application/json")
		_, err = io.Copy(w, io.LimitReader(rc, auditlog.MaxProofSize))
		return err
	} else if !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	p, err := in.log.AppendAndProve(r.Context(), e)
	if err != nil {
		return err
	}
	if err := kept(p); err != nil {
		return err
	}
	proof, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := in.archive.Put(r.Context(), key, bytes.NewReader(proof), int64(len(proof))); err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	in.slog.InfoContext(r.Context(), "logged", "kind", kind, "digest", digest)
	return web.WriteJSON(w, http.StatusOK, p)
}

// countRun counts the run a receipt closes by the outcome it states.
func (in *Intake) countRun(f *result.File) {
	if in.runs == nil {
		return
	}
	var rec struct {
		Outcome string `json:"outcome"`
	}
	outcome := "failed"
	if json.Unmarshal(f.Envelope.Payload, &rec) == nil && rec.Outcome == "completed" {
		outcome = "completed"
	}
	in.runs.RunFinished(outcome)
}

// timelock logs a time-lock registration: the sealed file's digest and its
// release time, so anyone can later show the file existed, sealed, before
// that time.
func (in *Intake) timelock(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, timelock.MaxRegistrationSize)
	if err != nil {
		return err
	}
	reg, err := timelock.ParseRegistration(body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	e := &auditlog.Entry{Kind: auditlog.KindTimelockRegistration, Time: in.now().UTC(),
		Subject: "sha256:" + reg.SealedSHA256, NotBefore: reg.ReleaseTime}
	if len(reg.Sealer) == 64 {
		e.Party = reg.Sealer
	}
	canonical, err := reg.Marshal()
	if err != nil {
		return err
	}
	return in.logOnce(w, r, auditlog.KindTimelockRegistration, result.DigestHex(canonical), func(*auditlog.Proof) error { return nil }, e)
}

// inferenceBuild logs a party's signed approval of an inference gateway
// build (docs/spec/inference.md §7): the approver, the TEE and the launch
// measurement, with the SHA-256 of the approval as subject.
func (in *Intake) inferenceBuild(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, trust.MaxBuildSize)
	if err != nil {
		return err
	}
	b, err := trust.ParseBuild(body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	digest, err := b.Digest()
	if err != nil {
		return err
	}
	e := &auditlog.Entry{Kind: auditlog.KindInferenceBuild, Time: in.now().UTC(), Subject: digest, Party: b.Approver, TEE: b.TEE, Measurement: b.Measurement}
	return in.logOnce(w, r, auditlog.KindInferenceBuild, strings.TrimPrefix(digest, "sha256:"), func(*auditlog.Proof) error { return nil }, e)
}

// keep archives a logged file with its inclusion proof embedded, under
// dir/<SHA-256 of the payload>.json.
func (in *Intake) keep(ctx context.Context, dir string, f *result.File, p *auditlog.Proof) error {
	proof, err := json.Marshal(p)
	if err != nil {
		return err
	}
	f.LogProof = proof
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	key := dir + "/" + result.DigestHex(f.Envelope.Payload) + ".json"
	if err := in.archive.Put(ctx, key, bytes.NewReader(data), int64(len(data))); err != nil {
		return fmt.Errorf("archive %s: %w", key, err)
	}
	return nil
}

// archived serves a kept file by the SHA-256 of its payload.
func (in *Intake) archived(dir string) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		d := r.PathValue("digest")
		if b, err := hex.DecodeString(d); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != d {
			return errBadDigest
		}
		rc, err := in.archive.Get(r.Context(), dir+"/"+d+".json")
		if errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("%w: no logged file with that payload digest", err)
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/json")
		_, err = io.Copy(w, rc)
		return err
	}
}
