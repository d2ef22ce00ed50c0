package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/metrics"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/timelock"
)

// logFlags configure the transparency-log role.
type logFlags struct {
	key              string
	origin           string
	witnesses        []string
	witnessThreshold int
}

func (l *logFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&l.key, "log-key", "", "the log's checkpoint signing key (C2SP note key file), created if missing; default <data>/log-key (its public key is written next to it as .pub)")
	fs.StringVar(&l.origin, "log-origin", auditlog.DefaultOrigin, "the log's origin: the name in its checkpoints and key")
	fs.StringArrayVar(&l.witnesses, "log-witness", nil, "URL=VKEY: a witness ('kura audit witness serve') that must cosign each checkpoint, and its verifier key, file or text (repeatable)")
	fs.IntVar(&l.witnessThreshold, "log-witness-threshold", 0, "how many --log-witness cosignatures each checkpoint needs (default: all)")
}

// witnessEndpoints parses --log-witness values.
func (l *logFlags) witnessEndpoints() ([]auditlog.WitnessEndpoint, error) {
	var out []auditlog.WitnessEndpoint
	for _, w := range l.witnesses {
		u, vkey, ok := strings.Cut(w, "=")
		if !ok || u == "" || vkey == "" {
			return nil, usagef("--log-witness %q: want URL=VKEY", w)
		}
		if data, err := os.ReadFile(vkey); err == nil {
			vkey = strings.TrimSpace(string(data))
		}
		if _, err := auditlog.ParseWitnessKey(vkey); err != nil {
			return nil, usagef("--log-witness %s: %w", u, err)
		}
		if c, err := auditlog.CosignatureKey(vkey); err == nil {
			vkey = c // an Ed25519 key file: the cosignature/v1 form witnesses sign with
		}
		out = append(out, auditlog.WitnessEndpoint{URL: u, VerifierKey: vkey})
	}
	if l.witnessThreshold < 0 || l.witnessThreshold > len(out) {
		return nil, usagef("--log-witness-threshold %d with %d --log-witness", l.witnessThreshold, len(out))
	}
	return out, nil
}

// maxLoggedFile bounds a result bundle or receipt posted for logging.
const maxLoggedFile = result.MaxSize

// mountLog opens the transparency log in <data>/log, serves it read-only
// under /log/, copies every key-release decision into it (following the
// key broker's audit trail), and accepts
// clean-room result bundles and deletion receipts for logging, answering
// with an inclusion proof (docs/spec/auditlog.md, docs/spec/cleanroom.md).
func mountLog(m *mountContext) error {
	keyPath := m.f.log.key
	if keyPath == "" {
		keyPath = filepath.Join(m.f.data, "log-key")
	}
	// Tessera logs through klog, a process-wide logger: send it to the
	// server's structured log instead of raw stderr.
	klog.SetSlogLogger(m.log)
	origin := m.f.log.origin
	if origin == "" {
		origin = auditlog.DefaultOrigin
	}
	key, err := loadOrCreateLogKey(keyPath, origin)
	if err != nil {
		return err
	}
	witnesses, err := m.f.log.witnessEndpoints()
	if err != nil {
		return err
	}
	l, err := auditlog.Open(m.ctx, auditlog.Config{Dir: filepath.Join(m.f.data, "log"), Key: key, Logger: m.log,
		Witnesses: witnesses, WitnessThreshold: m.f.log.witnessThreshold})
	if err != nil {
		return err
	}
	m.onClose(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.Close(ctx)
	})
	m.auditLog = l
	m.log.Info("transparency log open", "origin", l.Origin(), "verifier_key", key.VerifierKey())
	m.mux.Handle("/log/", http.StripPrefix("/log", l.Handler()))
	if m.kbsStore != nil {
		// The log follows the key broker's durable audit trail in the
		// background: a release is acknowledged once stored, and reaches
		// the log moments later — after a crash, when the server restarts.
		f := &auditlog.BrokerFollower{Log: l, Source: m.kbsStore, Cursor: filepath.Join(m.f.data, "log-cursor"), Logger: m.log}
		if err := f.Sync(m.ctx); err != nil {
			return fmt.Errorf("catch the log up with the key broker's audit trail: %w", err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.Run(ctx); close(done) }()
		m.onClose(func() { // runs before the log closes (reverse order)
			stop()
			<-done
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := f.Sync(ctx); err != nil {
				m.log.Error("transparency log: final catch-up with the key broker's audit trail", "err", err)
			}
		})
		m.audit.add(f)
		m.decisions.follower = f
		m.policyChanges = append(m.policyChanges, func(ctx context.Context, c *keybroker.PolicyChange) ([]byte, error) {
			p, err := l.AppendAndProve(ctx, &auditlog.Entry{Kind: auditlog.KindPolicyChange, Time: c.Time,
				PolicyID: fmt.Sprintf("%s@%d", c.Scope, c.Version), Subject: "sha256:" + c.SHA256})
			if err != nil {
				return nil, err
			}
			return json.Marshal(p)
		})
	}
	m.ready.AddCheck("log", func(ctx context.Context) error {
		_, _, err := l.Checkpoint(ctx)
		return err
	})
	if err := logVerifierInputs(m.ctx, l, m.f); err != nil {
		return err
	}
	archive, err := m.openBlobs(m.ctx)
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	intake := &logIntake{log: l, runs: m.metrics, archive: archive}
	kept := func(f web.HandlerFunc) http.Handler { return web.Handle(m.log, archiveProblem, f) }
	m.mux.Handle("GET /v1/cleanroom/results/{digest}", kept(intake.archived("results")))
	m.mux.Handle("GET /v1/cleanroom/receipts/{digest}", kept(intake.archived("receipts")))
	h := func(f web.HandlerFunc) http.Handler { return web.Handle(m.log, intakeProblem, f) }
	m.mux.Handle("POST /v1/cleanroom/results", h(intake.handle(auditlog.KindResult)))
	m.mux.Handle("POST /v1/cleanroom/receipts", h(intake.handle(auditlog.KindReceipt)))
	m.mux.Handle("POST /v1/cleanroom/runs", h(intake.handle(auditlog.KindRunStart)))
	m.mux.Handle("POST /v1/timelock/registrations", h(intake.timelock))
	return nil
}

// timelock logs a time-lock registration: the sealed file's digest and its
// release time, so anyone can later show the file existed, sealed, before
// that time (docs/spec/timelock.md).
func (in *logIntake) timelock(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, timelock.MaxRegistrationSize)
	if err != nil {
		return err
	}
	reg, err := timelock.ParseRegistration(body)
	if err != nil {
		return fmt.Errorf("%w: %w", errIntake, err)
	}
	e := &auditlog.Entry{Kind: auditlog.KindTimelockRegistration, Time: time.Now().UTC(),
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

// loadOrCreateLogKey reads the log key, or creates it (mode 0600) with its
// public verifier key beside it.
func loadOrCreateLogKey(path, origin string) (*auditlog.SignerKey, error) {
	key, err := auditlog.LoadSignerKey(path)
	if err == nil {
		if key.Name() != origin {
			return nil, fmt.Errorf("log key %s is for origin %q, not %q", path, key.Name(), origin)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, vkey, err := auditlog.GenerateKey(origin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := key.WriteFile(path); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	return key, nil
}

// logIntake logs result bundles and deletion receipts. It accepts only
// envelopes whose signature verifies with the signing key of the run
// context they carry, and logs digests, never contents. With an archive
// it also keeps each logged bundle and receipt, its inclusion proof
// embedded, under results/ or receipts/<SHA-256 of the payload>.json, for
// GET by that digest: a bundle is sealed to its receivers and a receipt
// holds digests, so the archive holds nothing in the clear.
type logIntake struct {
	log     *auditlog.Log
	runs    metrics.RunRecorder // counts runs by the outcome their receipts state
	archive blob.Store          // keeps logged bundles and receipts
}

var errIntake = errors.New("not a signed result bundle, receipt or time-lock registration")

func (in *logIntake) handle(kind auditlog.Kind) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(w, r, maxLoggedFile)
		if err != nil {
			return err
		}
		f, err := result.ParseFile(body)
		if err != nil {
			return fmt.Errorf("%w: %w", errIntake, err)
		}
		rc, err := result.CheckSigned(f)
		if err != nil {
			return fmt.Errorf("%w: %w", errIntake, err)
		}
		want := map[auditlog.Kind]string{auditlog.KindResult: result.BundleType, auditlog.KindReceipt: result.ReceiptType, auditlog.KindRunStart: result.RunStartType}[kind]
		if f.Envelope.PayloadType != want {
			return fmt.Errorf("%w: payload type %s does not belong here", errIntake, f.Envelope.PayloadType)
		}
		subject := "sha256:" + result.DigestHex(f.Envelope.Payload)
		if kind == auditlog.KindRunStart {
			subject = "sha256:" + rc.ManifestHash // a run start names the manifest it executes
		}
		p, err := in.log.AppendAndProve(r.Context(), &auditlog.Entry{
			Kind: kind, Time: time.Now().UTC(), Collaboration: rc.Collaboration, Run: rc.RunID, Subject: subject,
		})
		if err != nil {
			return err
		}
		if dir := map[auditlog.Kind]string{auditlog.KindResult: "results", auditlog.KindReceipt: "receipts"}[kind]; dir != "" {
			if err := in.keep(r.Context(), dir, f, p); err != nil {
				return err
			}
		}
		if kind == auditlog.KindReceipt {
			var rec struct {
				Outcome string `json:"outcome"`
			}
			outcome := "failed"
			if json.Unmarshal(f.Envelope.Payload, &rec) == nil && rec.Outcome == "completed" {
				outcome = "completed"
			}
			in.runs.RunFinished(outcome)
		}
		return web.WriteJSON(w, http.StatusOK, p)
	}
}

// keep archives a logged file with its inclusion proof embedded.
func (in *logIntake) keep(ctx context.Context, dir string, f *result.File, p *auditlog.Proof) error {
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

var errBadDigest = errors.New("want the SHA-256 of the payload as 64 lower-case hex digits")

// archived serves a kept file by the SHA-256 of its payload.
func (in *logIntake) archived(dir string) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		d := r.PathValue("digest")
		if b, err := hex.DecodeString(d); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != d {
			return errBadDigest
		}
		rc, err := in.archive.Get(r.Context(), dir+"/"+d+".json")
		if err != nil {
			return err
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "application/json")
		_, err = io.Copy(w, rc)
		return err
	}
}

func archiveProblem(err error) *web.Problem {
	switch {
	case errors.Is(err, errBadDigest):
		return web.NewProblem(http.StatusBadRequest, "bad-request", err.Error(), err)
	case errors.Is(err, blob.ErrNotFound):
		return web.NewProblem(http.StatusNotFound, "not-found", "no logged file with that payload digest", err)
	}
	return nil
}

func intakeProblem(err error) *web.Problem {
	if errors.Is(err, errIntake) || errors.Is(err, collab.ErrBadRunContext) {
		return web.NewProblem(http.StatusBadRequest, "bad-request", err.Error(), err)
	}
	return nil
}

// logVerifierInputs records the verifier's appraisal inputs in the log when
// they differ from what the log last recorded for this server: the
// reference values file (reference_values_change) and the appraisal policy
// (policy_change, policy id "appraisal"), each by the SHA-256 of its bytes,
// the built-in policy by that of its source. The digests last logged are
// kept in <data>/log-verifier-inputs.
func logVerifierInputs(ctx context.Context, l *auditlog.Log, f *serveFlags) error {
	digest := func(path string, builtin []byte) (string, error) {
		data := builtin
		if path != "" {
			var err error
			if data, err = os.ReadFile(path); err != nil {
				return "", err
			}
		}
		sum := sha256.Sum256(data)
		return "sha256:" + hex.EncodeToString(sum[:]), nil
	}
	ref, err := digest(f.reference, nil)
	if err != nil {
		return err
	}
	pol, err := digest(f.policy, []byte(appraisal.DefaultPolicy))
	if err != nil {
		return err
	}
	state := filepath.Join(f.data, "log-verifier-inputs")
	last, _ := os.ReadFile(state)
	lines := strings.Split(string(last), "\n")
	now := time.Now().UTC()
	if len(lines) < 1 || lines[0] != ref {
		if _, err := l.Append(ctx, &auditlog.Entry{Kind: auditlog.KindReferenceValuesChange, Time: now, Subject: ref}); err != nil {
			return err
		}
	}
	if len(lines) < 2 || lines[1] != pol {
		if _, err := l.Append(ctx, &auditlog.Entry{Kind: auditlog.KindPolicyChange, Time: now, PolicyID: "appraisal", Subject: pol}); err != nil {
			return err
		}
	}
	return os.WriteFile(state, []byte(ref+"\n"+pol+"\n"), 0o600)
}
