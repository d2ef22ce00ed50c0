package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/mpc/elgamal"
	"github.com/kura-cc/kura/mpc/psi"
	"github.com/kura-cc/kura/result"
)

// StatementHeader carries the responder's signed statement (a DSSE
// envelope, JSON, standard base64) next to its binary PSI response.
const StatementHeader = "Kura-Agent-Statement"

// pendingTTL is how long an accepted run waits for its PSI request.
const pendingTTL = 5 * time.Minute

// clockSkew is how far an initiator's statement may be dated from the
// responder's clock.
const clockSkew = 5 * time.Minute

// maxStartSize bounds a run's opening message: the collaboration file and
// the initiator's statement.
const maxStartSize = collab.MaxCollaborationSize + 64<<10

// Start is a run's opening message, initiator to responder.
type Start struct {
	// Collaboration is the collaboration file the run is for.
	Collaboration json.RawMessage `json:"collaboration"`
	// Statement is the initiator's statement (result.AgentStatement,
	// role initiator), signed with its owner's party key: it binds the run
	// context, the session and the digest of the PSI request that follows.
	Statement *result.Envelope `json:"statement"`
}

// Accepted is the responder's answer to Start.
type Accepted struct {
	RunID string `json:"run_id"`
	// MaxRequestBytes is the largest PSI request it will read.
	MaxRequestBytes int `json:"max_request_bytes"`
	// ValueKey is the responder's public share of the key its values are
	// encrypted under (hex), when the analysis sums them; its statement
	// repeats it.
	ValueKey string `json:"value_key,omitempty"`
}

// pendingRun is a run accepted by Start, waiting for its request; for an
// analysis with sums, then waiting for its decryption request.
type pendingRun struct {
	p       *plan
	start   *result.AgentStatement
	session psi.SessionID
	expires time.Time
	// For sums: this agent's key share and the joint key; once the PSI
	// is answered, the statement so far and the number of groups.
	vk     *elgamal.KeyShare
	pk     *elgamal.PublicKey
	answer *result.AgentStatement
	groups int
	// chain is the state of a run among three or more owners.
	chain *chainPending
}

// Handler serves the responder's API (docs/spec/mpc.md §4):
//
//	POST /v1/mpc/runs                 Start → 201 Accepted
//	POST /v1/mpc/runs/{run_id}/psi    PSI request → PSI response (+ statement)
//	POST /v1/mpc/runs/{run_id}/decrypt  the groups' encrypted sums → partial decryptions + statement
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/mpc/runs", web.Handle(a.log, nil, a.handleStart))
	mux.Handle("POST /v1/mpc/runs/{run}/psi", web.Handle(a.log, nil, a.handlePSI))
	mux.Handle("POST /v1/mpc/runs/{run}/decrypt", web.Handle(a.log, nil, a.handleDecrypt))
	mux.Handle("POST /v1/mpc/runs/{run}/own", web.Handle(a.log, nil, a.handleOwn))
	mux.Handle("POST /v1/mpc/runs/{run}/step", web.Handle(a.log, nil, a.handleStep))
	return mux
}

func (a *Agent) handleStart(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, maxStartSize)
	if err != nil {
		return err
	}
	var s Start
	if err := json.Unmarshal(body, &s); err != nil || s.Statement == nil {
		return fmt.Errorf("%w: start: want {collaboration, statement}", ErrMalformed)
	}
	pr, err := a.accept(r.Context(), &s)
	if err != nil {
		a.log.WarnContext(r.Context(), "mpc run refused", "reason", err)
		return err
	}
	a.log.InfoContext(r.Context(), "mpc run accepted", "collaboration", pr.p.m.ID, "analysis", pr.p.an.ID,
		"run", pr.p.rc.RunID, "initiator", pr.p.peer.Name, "dataset", pr.p.mine.ID, "epsilon", pr.start.Epsilon)
	acc := Accepted{RunID: pr.p.rc.RunID, MaxRequestBytes: a.psiConfig(pr.p, pr.session).MaxMessageSize()}
	if pr.vk != nil {
		acc.ValueKey = shareHex(pr.vk)
	}
	return web.WriteJSON(w, http.StatusCreated, acc)
}

// accept checks a Start and records the run: the collaboration and the
// run pass authorize for this owner as responder; the statement is the
// initiator owner's, signed with the key on its card, for this run, its
// dataset and a fresh session, and dated near now; then the ledger takes
// the run (replay, max_runs, budget).
func (a *Agent) accept(ctx context.Context, s *Start) (*pendingRun, error) {
	c, err := collab.ParseCollaboration(s.Collaboration)
	if err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrMalformed, err)
	}
	var probe result.AgentStatement
	if err := json.Unmarshal(s.Statement.Payload, &probe); err != nil {
		return nil, fmt.Errorf("%w: statement: %v", ErrMalformed, err)
	}
	p, err := a.authorize(c, probe.Run, false)
	if err != nil {
		return nil, err
	}
	st, err := result.VerifyAgent(s.Statement, p.peer.Card)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	now := a.cfg.Now()
	switch {
	case st.Role != result.RoleInitiator:
		return nil, fmt.Errorf("%w: the statement's role is %q, want initiator", ErrRefused, st.Role)
	case st.Dataset != p.theirs.ID || st.SealedSHA256 != p.theirs.Descriptor.SealedSHA256:
		return nil, fmt.Errorf("%w: the initiator's statement names dataset %q, the run reads %q", ErrRefused, st.Dataset, p.theirs.ID)
	case st.SignedAt.Before(now.Add(-clockSkew)) || st.SignedAt.After(now.Add(clockSkew)):
		return nil, fmt.Errorf("%w: the initiator's statement is dated %s, more than %v from this agent's clock", ErrReplay, st.SignedAt.UTC().Format(time.RFC3339), clockSkew)
	}
	var session psi.SessionID
	if b, err := hex.DecodeString(st.Session); err != nil || len(b) != len(session) {
		return nil, fmt.Errorf("%w: session %q", ErrMalformed, st.Session)
	} else {
		copy(session[:], b)
	}
	if _, err := hex.DecodeString(st.RequestSHA256); err != nil || len(st.RequestSHA256) != 64 {
		return nil, fmt.Errorf("%w: request_sha256 %q", ErrMalformed, st.RequestSHA256)
	}
	if p.eps != nil && st.Epsilon != p.eps.String() || p.eps == nil && st.Epsilon != "" {
		return nil, fmt.Errorf("%w: the initiator charges ε %q, the analysis another", ErrRefused, st.Epsilon)
	}
	pr := &pendingRun{p: p, start: st, session: session, expires: now.Add(pendingTTL)}
	if len(p.sums) > 0 {
		theirs, err := parseShare(st.ValueKey)
		if err != nil {
			return nil, fmt.Errorf("the initiator's value key: %w", err)
		}
		if pr.vk, err = elgamal.NewKeyShare(); err != nil {
			return nil, err
		}
		if pr.pk, err = elgamal.JointKey(theirs, pr.vk.Public()); err != nil {
			pr.vk.Close()
			return nil, fmt.Errorf("%w: the initiator's value key: %w", ErrMalformed, err)
		}
	}
	if chained(p.an) {
		if pr.chain, err = a.newChain(p, session); err != nil {
			return nil, err
		}
	}
	if err := a.reserve(p, session); err != nil {
		if pr.vk != nil {
			pr.vk.Close()
		}
		if pr.chain != nil {
			a.dropChain(pr)
		}
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, x := range a.pending {
		if now.After(x.expires) {
			delete(a.pending, id)
		}
	}
	a.pending[p.rc.RunID] = pr
	return pr, nil
}

func (a *Agent) handlePSI(w http.ResponseWriter, r *http.Request) error {
	pr, body, err := a.take(w, r, func(pr *pendingRun) bool { return pr.chain == nil && pr.answer == nil },
		func(pr *pendingRun) int {
			cfg := a.psiConfig(pr.p, pr.session)
			return cfg.MaxMessageSize() + 4 + cfg.MaxElements*pr.p.payloadSize(true)
		})
	if err != nil {
		return err
	}
	ctx := r.Context()
	log := a.log.With("collaboration", pr.p.m.ID, "analysis", pr.p.an.ID, "run", pr.p.rc.RunID)
	resp, err := a.respond(ctx, pr, body)
	if err != nil {
		if pr.vk != nil {
			pr.vk.Close()
		}
		log.WarnContext(ctx, "mpc request refused", "reason", err)
		return err
	}
	var stmt string
	if pr.vk != nil {
		a.keep(pr) // the sums are decrypted next: the statement comes with that
	} else if stmt, err = a.signStatement(pr.answer); err != nil {
		return err
	}
	log.InfoContext(ctx, "mpc request answered; session key and plaintext wiped", "response_bytes", len(resp), "sums", len(pr.p.sums))
	return writeAnswer(w, resp, stmt)
}

// SignatureContext names the agents' API in the signatures (package
// internal/httpsig) with which the initiator signs every request after
// Start.
const SignatureContext = "kura-mpc-agent-v1"

// take takes the pending run a request is for: one at the step ready
// accepts, not expired. It reads the body (at most limit(run) bytes) and
// checks that the initiator owner signed the request with the key on its
// card before it removes the run from the pending ones, so an unsigned or
// foreign request — another party's, another run's — changes nothing.
func (a *Agent) take(w http.ResponseWriter, r *http.Request, ready func(*pendingRun) bool, limit func(*pendingRun) int) (*pendingRun, []byte, error) {
	id := r.PathValue("run")
	waiting := func() *pendingRun {
		pr := a.pending[id]
		if pr == nil || !ready(pr) || a.cfg.Now().After(pr.expires) {
			return nil
		}
		return pr
	}
	a.mu.Lock()
	pr := waiting()
	a.mu.Unlock()
	if pr == nil {
		return nil, nil, fmt.Errorf("%w: run %q has no step awaiting this request (answered, out of order, expired or never started)", ErrNoRun, id)
	}
	body, err := web.ReadBody(w, r, int64(limit(pr)))
	if err != nil {
		return nil, nil, err
	}
	card := pr.p.peer.Card
	if _, err := a.sig.Verify(r, body, func(kid string) (ed25519.PublicKey, bool) { return card.SigningKey, kid == card.Fingerprint }); err != nil {
		a.log.WarnContext(r.Context(), "mpc request refused", "run", id, "path", r.URL.Path, "reason", err)
		return nil, nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if waiting() != pr {
		return nil, nil, fmt.Errorf("%w: run %q was taken by another request", ErrNoRun, id)
	}
	delete(a.pending, id)
	return pr, body, nil
}

// keep puts a run back among the pending ones, for its next step.
func (a *Agent) keep(pr *pendingRun) {
	pr.expires = a.cfg.Now().Add(pendingTTL)
	a.mu.Lock()
	a.pending[pr.p.rc.RunID] = pr
	a.mu.Unlock()
}

// writeAnswer writes a binary answer and, when set, the statement header.
func writeAnswer(w http.ResponseWriter, body []byte, stmt string) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	if stmt != "" {
		w.Header().Set(StatementHeader, stmt)
	}
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(body)
	return err
}

// handleDecrypt answers the initiator's request for this agent's partial
// decryptions of the groups' encrypted sums: exactly two per group and sum
// measure (the total and the count of values), once per run; then it
// signs its statement, naming this exchange too, and wipes its key share.
func (a *Agent) handleDecrypt(w http.ResponseWriter, r *http.Request) error {
	decryptions := func(pr *pendingRun) int { return pr.groups * 2 * len(pr.p.sums) }
	pr, body, err := a.take(w, r, func(pr *pendingRun) bool { return pr.answer != nil && pr.vk != nil },
		func(pr *pendingRun) int { return 4 + decryptions(pr)*elgamal.CiphertextSize })
	if err != nil {
		return err
	}
	defer pr.vk.Close()
	id, n := pr.p.rc.RunID, decryptions(pr)
	cs, err := elgamal.ParseCiphertexts(body, n, a.cfg.Workers)
	if err != nil || len(cs) != n {
		return fmt.Errorf("%w: want %d encrypted sums (%d groups × %d measures × 2): %v", ErrMalformed, n, pr.groups, len(pr.p.sums), err)
	}
	ps := make([]elgamal.Partial, n)
	for i := range cs {
		if ps[i], err = pr.vk.PartialDecrypt(&cs[i]); err != nil {
			return err
		}
	}
	out := appendPartials(nil, ps)
	pr.answer.DecryptRequestSHA256, pr.answer.DecryptResponseSHA256 = digest(body), digest(out)
	stmt, err := a.signStatement(pr.answer)
	if err != nil {
		return err
	}
	a.log.InfoContext(r.Context(), "mpc sums decrypted with the initiator; key share wiped", "collaboration", pr.p.m.ID, "analysis", pr.p.an.ID, "run", id, "sums", n)
	return writeAnswer(w, out, stmt)
}

// signStatement signs this agent's statement and encodes it for
// StatementHeader.
func (a *Agent) signStatement(st *result.AgentStatement) (string, error) {
	st.SignedAt = a.cfg.Now().UTC()
	env, err := result.SignAgent(st, a.cfg.Identity)
	if err != nil {
		return "", err
	}
	js, err := json.Marshal(env)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(js), nil
}

// respond checks the request against the initiator's signed digest,
// computes the owner's side (its values encrypted under the joint key when
// the analysis sums them) and answers; pr.answer is its statement so far.
// The request is signed (take); its digest must be the one the initiator
// signed in its statement.
func (a *Agent) respond(ctx context.Context, pr *pendingRun, body []byte) ([]byte, error) {
	cfg := a.psiConfig(pr.p, pr.session)
	valueSize := pr.p.payloadSize(true)
	var values []byte // the initiator's encrypted values, with sums over its columns
	if valueSize > 0 {
		var err error
		if body, values, err = unframe(body); err != nil {
			return nil, err
		}
		if len(values)%valueSize != 0 {
			return nil, fmt.Errorf("%w: %d bytes of encrypted values", ErrMalformed, len(values))
		}
	}
	if d := digest(body); d != pr.start.RequestSHA256 {
		return nil, fmt.Errorf("%w: the request's SHA-256 is %.16s…, the initiator signed %.16s…", ErrTampered, d, pr.start.RequestSHA256)
	}
	var req psi.Request
	if err := req.UnmarshalBinary(body); err != nil {
		return nil, fmt.Errorf("%w: request: %w", ErrMalformed, err)
	}
	in, plain, err := a.input(ctx, pr.p)
	if err != nil {
		return nil, err
	}
	mine := pr.p.side(false)
	if len(in.Groups) != 1 || len(in.Measures) != len(mine) {
		return nil, fmt.Errorf("%w: the responder's side has %d groups and %d summed measures", ErrAgent, len(in.Groups), len(in.Measures))
	}
	var payloads [][]byte
	if len(mine) > 0 {
		all, err := a.encryptValues(pr.p, pr.pk, in.Groups[0].Values, mine)
		if err != nil {
			return nil, err
		}
		size := pr.p.payloadSize(false)
		for i := range in.Groups[0].IDs {
			payloads = append(payloads, all[i*size:(i+1)*size])
		}
	}
	recv, err := psi.NewPayloadReceiver(cfg, in.Groups[0].IDs, payloads)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	resp, back, err := recv.RespondWithPayloads(&req, values, valueSize)
	if err != nil {
		return nil, fmt.Errorf("%w: request: %w", ErrMalformed, err)
	}
	out, err := resp.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if valueSize > 0 {
		if back, err = a.rerandomizeAll(pr.pk, back); err != nil {
			return nil, err
		}
		out = frame(out, back)
	}
	pr.groups = len(req.Groups)
	pr.answer = &result.AgentStatement{
		Role: result.RoleResponder, Run: pr.p.run, Party: a.cfg.Identity.Name(),
		Dataset: pr.p.mine.ID, SealedSHA256: pr.p.mine.Descriptor.SealedSHA256,
		Session: pr.start.Session, RequestSHA256: pr.start.RequestSHA256, ResponseSHA256: digest(out),
		Identifiers: len(resp.Elements), Epsilon: pr.start.Epsilon, PlaintextBytes: plain,
	}
	if pr.vk != nil {
		pr.answer.ValueKey = shareHex(pr.vk)
	}
	if values != nil {
		pr.answer.ValuesSHA256 = digest(values)
	}
	return out, nil
}

// frame joins two parts: u32 length of the first, the first, the second.
func frame(first, second []byte) []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(first)+len(second)), uint32(len(first)))
	return append(append(out, first...), second...)
}

// unframe splits what frame joined.
func unframe(b []byte) (first, second []byte, err error) {
	if len(b) < 4 || uint64(binary.BigEndian.Uint32(b)) > uint64(len(b)-4) {
		return nil, nil, fmt.Errorf("%w: a framed message of %d bytes", ErrMalformed, len(b))
	}
	n := int(binary.BigEndian.Uint32(b))
	return b[4 : 4+n], b[4+n:], nil
}

// readAll reads at most limit bytes, failing beyond.
func readAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrMalformed, limit)
	}
	return b, nil
}
