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
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/timelock"
)

// ErrRefused means a posted file is not a signed result bundle, receipt,
// run start or time-lock registration of the kind its route takes. The
// HTTP API answers 400 bad-request.
var ErrRefused = fault.New(nil, fault.BadRequest, "not a signed result bundle, receipt or time-lock registration")

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
	now     func() time.Time
	slog    *slog.Logger
}

// New returns an intake.
func New(cfg Config) (*Intake, error) {
	if cfg.Log == nil || cfg.Archive == nil {
		return nil, errors.New("intake: Log and Archive are required")
	}
	in := &Intake{log: cfg.Log, archive: cfg.Archive, runs: cfg.Runs, now: cfg.Now, slog: cfg.Logger}
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
}

// Register mounts the intake's routes on mux: POST of each kind, and GET
// /v1/cleanroom/results/{digest} and /v1/cleanroom/receipts/{digest} for
// the archive.
func (in *Intake) Register(mux *http.ServeMux) {
	h := func(f web.HandlerFunc) http.Handler { return web.Handle(in.slog, nil, f) }
	for _, kind := range []auditlog.Kind{auditlog.KindRunStart, auditlog.KindResult, auditlog.KindReceipt} {
		mux.Handle("POST "+routes[kind], h(in.envelope(kind)))
	}
	mux.Handle("POST "+routes[auditlog.KindTimelockRegistration], h(in.timelock))
	mux.Handle("GET /v1/cleanroom/results/{digest}", h(in.archived("results")))
	mux.Handle("GET /v1/cleanroom/receipts/{digest}", h(in.archived("receipts")))
}

var errBadDigest = fault.New(nil, fault.BadRequest, "want the SHA-256 of the payload as 64 lower-case hex digits")

// envelope logs a signed run start, result bundle or receipt.
func (in *Intake) envelope(kind auditlog.Kind) web.HandlerFunc {
	want := map[auditlog.Kind]string{auditlog.KindResult: result.BundleType, auditlog.KindReceipt: result.ReceiptType, auditlog.KindRunStart: result.RunStartType}[kind]
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(w, r, result.MaxSize)
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
		subject := "sha256:" + result.DigestHex(f.Envelope.Payload)
		if kind == auditlog.KindRunStart {
			subject = "sha256:" + rc.ManifestHash // a run start names the manifest it executes
		}
		p, err := in.log.AppendAndProve(r.Context(), &auditlog.Entry{
			Kind: kind, Time: in.now().UTC(), Collaboration: rc.Collaboration, Run: rc.RunID, Subject: subject,
		})
		if err != nil {
			return err
		}
		switch kind {
		case auditlog.KindResult:
			err = in.keep(r.Context(), "results", f, p)
		case auditlog.KindReceipt:
			if err = in.keep(r.Context(), "receipts", f, p); err == nil {
				in.countRun(f)
			}
		}
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, p)
	}
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
	p, err := in.log.AppendAndProve(r.Context(), e)
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, p)
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
