package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/internal/web"
)

// WitnessConfig configures a Witness.
type WitnessConfig struct {
	// Key cosigns checkpoints (Ed25519; cosignatures are C2SP
	// tlog-cosignature cosignature/v1).
	Key *SignerKey
	// Logs are the verifier keys of the logs this witness follows; a key's
	// name is the log's origin.
	Logs []note.Verifier
	// StateDir keeps the last cosigned checkpoint of each log.
	StateDir string
	// Logger receives each decision (nil: discarded).
	Logger *slog.Logger
}

// Witness cosigns a log's checkpoint only if it is consistent with the
// last checkpoint it cosigned for that log, so a log cannot show a
// witnessed history to some and a different one to others. It speaks the
// C2SP tlog-witness protocol (POST /add-checkpoint), which Tessera's
// appender calls when Config.Witnesses names it.
type Witness struct {
	signer note.Signer
	vkey   string
	logs   map[string]note.Verifier
	dir    string
	log    *slog.Logger
	mu     sync.Mutex
}

// witnessError carries the tlog-witness HTTP status for a refusal.
type witnessError struct {
	status    int
	size      uint64 // the last cosigned size, when sizeKnown
	sizeKnown bool
	msg       string
}

func (e *witnessError) Error() string { return e.msg }

// NewWitness returns a witness.
func NewWitness(cfg WitnessConfig) (*Witness, error) {
	if cfg.Key == nil || cfg.StateDir == "" || len(cfg.Logs) == 0 {
		return nil, errors.New("auditlog: witness needs Key, StateDir and at least one log")
	}
	s, err := fnote.NewSignerForCosignatureV1(cfg.Key.text)
	if err != nil {
		return nil, fmt.Errorf("auditlog: witness key: %w", err)
	}
	vkey, err := CosignatureKey(cfg.Key.VerifierKey())
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("auditlog: witness state: %w", err)
	}
	w := &Witness{signer: s, vkey: vkey, logs: map[string]note.Verifier{}, dir: cfg.StateDir, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	for _, v := range cfg.Logs {
		w.logs[v.Name()] = v
	}
	return w, nil
}

// VerifierKey returns the witness's cosignature/v1 verifier key, which
// logs and verifiers configure.
func (w *Witness) VerifierKey() string { return w.vkey }

func (w *Witness) statePath(origin string) string {
	h := sha256.Sum256([]byte(origin))
	return filepath.Join(w.dir, hex.EncodeToString(h[:16]))
}

// AddCheckpoint checks a checkpoint against the last one cosigned for its
// log, given the size the caller believes that was (oldSize) and a
// consistency proof from it, and returns the cosignature line(s) to append
// to the note ("— name base64\n").
func (w *Witness) AddCheckpoint(ctx context.Context, oldSize uint64, consistency [][]byte, checkpoint []byte) ([]byte, error) {
	origin, _, _ := strings.Cut(string(checkpoint), "\n")
	v, ok := w.logs[origin]
	if !ok {
		return nil, &witnessError{status: http.StatusNotFound, msg: fmt.Sprintf("unknown log origin %q", truncate(origin, 80))}
	}
	cp, err := openCheckpoint(checkpoint, v)
	if err != nil {
		return nil, &witnessError{status: http.StatusForbidden, msg: err.Error()}
	}
	if oldSize > cp.Size {
		return nil, &witnessError{status: http.StatusBadRequest, msg: fmt.Sprintf("old size %d is larger than the checkpoint's %d", oldSize, cp.Size)}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var latestSize uint64
	var latestRoot []byte
	if raw, err := os.ReadFile(w.statePath(origin)); err == nil {
		latest, err := openCheckpoint(raw, v)
		if err != nil {
			return nil, fmt.Errorf("witness state for %s: %w", origin, err)
		}
		latestSize, latestRoot = latest.Size, latest.Hash
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if oldSize != latestSize {
		return nil, &witnessError{status: http.StatusConflict, size: latestSize, sizeKnown: true, msg: fmt.Sprintf("last cosigned size is %d, not %d", latestSize, oldSize)}
	}
	switch {
	case oldSize == cp.Size && oldSize > 0:
		if !bytes.Equal(latestRoot, cp.Hash) {
			w.log.WarnContext(ctx, "witness refused a fork", "origin", origin, "size", cp.Size)
			return nil, &witnessError{status: http.StatusConflict, msg: fmt.Sprintf("a different root for size %d was cosigned before", cp.Size)}
		}
	case oldSize > 0:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, cp.Size, consistency, latestRoot, cp.Hash); err != nil {
			w.log.WarnContext(ctx, "witness refused an inconsistent checkpoint", "origin", origin, "old", oldSize, "new", cp.Size, "err", err)
			return nil, &witnessError{status: http.StatusUnprocessableEntity, msg: "consistency proof does not verify: " + err.Error()}
		}
	}
	if cp.Size > latestSize || latestRoot == nil {
		if err := writeState(w.statePath(origin), checkpoint); err != nil {
			return nil, err
		}
	}
	n, err := note.Open(checkpoint, note.VerifierList(v))
	if err != nil {
		return nil, err
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, err
	}
	w.log.InfoContext(ctx, "witness cosigned", "origin", origin, "size", cp.Size)
	return signed[len(n.Text)+1:], nil
}

// maxWitnessRequest bounds an add-checkpoint body.
const maxWitnessRequest = maxCheckpointSize + 4<<10

// Handler serves POST /add-checkpoint (C2SP tlog-witness).
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /add-checkpoint", web.Handle(w.log, mapWitnessError, func(rw http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(rw, r, maxWitnessRequest)
		if err != nil {
			return err
		}
		old, proofHashes, cp, err := parseAddCheckpoint(body)
		if err != nil {
			return &witnessError{status: http.StatusBadRequest, msg: err.Error()}
		}
		sig, err := w.AddCheckpoint(r.Context(), old, proofHashes, cp)
		var we *witnessError
		if errors.As(err, &we) && we.sizeKnown {
			// The protocol's one machine-readable refusal: the caller
			// retries with this old size.
			rw.Header().Set("Content-Type", "text/x.tlog.size")
			rw.WriteHeader(http.StatusConflict)
			_, err = fmt.Fprintf(rw, "%d\n", we.size)
			return err
		}
		if err != nil {
			return err
		}
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, err = rw.Write(sig)
		return err
	}))
	return mux
}

func mapWitnessError(err error) *web.Problem {
	var we *witnessError
	if errors.As(err, &we) {
		return web.NewProblem(we.status, "witness-refused", we.msg, err)
	}
	var p *web.Problem
	if errors.As(err, &p) {
		return p
	}
	return web.NewProblem(http.StatusInternalServerError, "internal", "the witness failed", err)
}

// parseAddCheckpoint parses a tlog-witness request body: "old N", proof
// hashes in base64, an empty line, the checkpoint note.
func parseAddCheckpoint(body []byte) (uint64, [][]byte, []byte, error) {
	head, cp, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		// No proof lines: "old N\n\n" then the note.
		return 0, nil, nil, errors.New("add-checkpoint body: want old size, proof lines, an empty line, the checkpoint")
	}
	sc := bufio.NewScanner(bytes.NewReader(head))
	if !sc.Scan() {
		return 0, nil, nil, errors.New("add-checkpoint body: missing old size line")
	}
	s, ok := strings.CutPrefix(sc.Text(), "old ")
	if !ok {
		return 0, nil, nil, errors.New("add-checkpoint body: first line must be \"old N\"")
	}
	old, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("add-checkpoint body: old size: %w", err)
	}
	var hashes [][]byte
	for sc.Scan() {
		if len(hashes) == maxProofHashes {
			return 0, nil, nil, errors.New("add-checkpoint body: too many proof lines")
		}
		h, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil || len(h) != 32 {
			return 0, nil, nil, errors.New("add-checkpoint body: a proof line is not a base64 SHA-256 hash")
		}
		hashes = append(hashes, h)
	}
	return old, hashes, cp, nil
}
