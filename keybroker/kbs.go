package keybroker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/coco"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/verifier"
)

// ProtocolVersion is the KBS protocol version kura's client speaks: 0.4.0,
// the version of Trustee and of current Confidential Containers guests. The
// broker also accepts clients speaking 0.1.x and other 0.4.x versions,
// unless it answers as Trustee does (CompatTrustee: 0.4.0 only)
// (docs/spec/keybroker.md §2).
const ProtocolVersion = "0.4.0"

// maxKBSBody bounds KBS request bodies.
const maxKBSBody = attestation.MaxBundleSize + 64<<10

// Attester verifies evidence for /kbs/v0/attest; *verifier.Service is one.
type Attester interface {
	Verify(ctx context.Context, b *attestation.Bundle, opts verifier.Options) (*verifier.Report, error)
}

// Register mounts the KBS protocol and the admin API on mux, and answers
// every other request under /kbs/ with a problem (404, or 405 for a path
// that has routes for other methods).
func (b *Broker) Register(mux *http.ServeMux, admins *Admins) {
	h := func(f web.HandlerFunc) http.Handler { return web.Handle(b.log, nil, b.limited(f)) }
	mux.Handle("POST /kbs/v0/auth", h(b.compatible(endpointAuth, b.handleAuth)))
	mux.Handle("POST /kbs/v0/attest", h(b.compatible(endpointAttest, b.handleAttest)))
	mux.Handle("GET /kbs/v0/resource/{repo}/{type}/{tag}", h(b.compatible(endpointResource, b.handleResource)))
	mux.Handle("POST "+RunResourcePrefix+"{repo}/{type}/{tag}", h(b.handleResource))
	mux.Handle("POST "+RevocationPath, h(b.handleRevocation))
	mux.Handle("GET "+BudgetPath, h(b.handleBudget))
	b.registerAdmin(mux, admins)
	mux.Handle(kbsCatchAll, h(b.unrouted(mux)))
}

// limited applies the per-client rate limit.
func (b *Broker) limited(f web.HandlerFunc) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !b.limiter.Allow(web.ClientAddr(r)) {
			return ErrRateLimited
		}
		return f(w, r)
	}
}

// kbsRequest is the KBS Request payload.
type kbsRequest struct {
	Version     string          `json:"version"`
	TEE         string          `json:"tee"`
	ExtraParams json.RawMessage `json:"extra-params,omitempty"`
}

// kbsChallenge is the KBS Challenge payload.
type kbsChallenge struct {
	Nonce       string `json:"nonce"`
	ExtraParams string `json:"extra-params"`
}

// kbsRuntimeData is the runtime data of a KBS Attestation payload.
type kbsRuntimeData struct {
	Nonce     string          `json:"nonce"`
	TEEPubKey json.RawMessage `json:"tee-pubkey"`
}

// kbsAttestation is the KBS Attestation payload. Protocol 0.1.0 put
// tee-pubkey at the top level; 0.1.1 puts it in runtime-data; 0.4 adds
// init-data (initdata.go).
type kbsAttestation struct {
	RuntimeData *kbsRuntimeData `json:"runtime-data,omitempty"`
	TEEPubKey   json.RawMessage `json:"tee-pubkey,omitempty"`
	TEEEvidence json.RawMessage `json:"tee-evidence"`
	InitData    json.RawMessage `json:"init-data,omitempty"`
}

// teeFor maps KBS TEE names to kura's.
func teeFor(name string) (attestation.TEE, error) {
	switch name {
	case "snp":
		return attestation.SNP, nil
	case "tdx":
		return attestation.TDX, nil
	case "sample", "sim":
		return attestation.Sim, nil
	case "az-snp-vtpm":
		return attestation.AzSNPvTPM, nil
	case "az-tdx-vtpm":
		return attestation.AzTDXvTPM, nil
	case "cca":
		return attestation.CCA, nil
	case "tpm":
		return attestation.TPM, nil
	}
	return "", fmt.Errorf("%w: tee %q is not supported (snp, tdx, az-snp-vtpm, az-tdx-vtpm, cca, tpm, or sample/sim in dev mode)", ErrBadRequest, name)
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

func (b *Broker) handleAuth(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	var req kbsRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if err := b.checkVersion(req.Version); err != nil {
		return err
	}
	tee, err := teeFor(req.TEE)
	if err != nil {
		return err
	}
	nonce := make([]byte, 32)
	rand.Read(nonce)
	id, sess, err := b.sessions.create(r.Context(), tee, nonce)
	if err != nil {
		return err
	}
	setSessionCookie(w, id, sess.Expires)
	return web.WriteJSON(w, http.StatusOK, kbsChallenge{Nonce: base64.StdEncoding.EncodeToString(nonce), ExtraParams: ""})
}

// setSessionCookie sets the session cookie. /auth sets it and /attest sets
// it again, as Trustee does, so a client that keeps the cookies of the
// last answer keeps the session.
func setSessionCookie(w http.ResponseWriter, id string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: id, Path: "/kbs", Expires: expires, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// sessionID returns the request's session cookie.
func sessionID(r *http.Request) (string, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return "", fmt.Errorf("%w: no %s cookie: start with POST /kbs/v0/auth", ErrUnauthenticated, SessionCookie)
	}
	return c.Value, nil
}

var errNoSession = fmt.Errorf("%w: session unknown or expired: start again with POST /kbs/v0/auth", ErrUnauthenticated)

func (b *Broker) handleAttest(w http.ResponseWriter, r *http.Request) error {
	if b.attest == nil {
		return web.NewProblem(http.StatusNotImplemented, "no-verifier", "this broker has no built-in verifier: present a token from a trusted verifier as a Bearer token", nil)
	}
	id, err := sessionID(r)
	if err != nil {
		return err
	}
	if a, ok, err := b.sessions.attested(r.Context(), id); err != nil {
		return err
	} else if ok {
		setSessionCookie(w, id, a.Expires)
		return web.WriteJSON(w, http.StatusOK, map[string]string{"token": string(a.Token)})
	}
	sess, ok, err := b.sessions.pending(r.Context(), id)
	if err != nil {
		return err
	}
	if !ok {
		return errNoSession
	}
	body, err := web.ReadBody(w, r, maxKBSBody)
	if err != nil {
		return err
	}
	var att kbsAttestation
	if err := decodeStrict(body, &att); err != nil {
		return err
	}
	bundle, err := b.bundleFor(sess, &att)
	if err != nil {
		return err
	}
	initData, err := parseInitData(att.InitData)
	if err != nil {
		return err
	}
	// Claim the session: its nonce is spent by this attempt, pass or fail.
	if _, ok, err := b.sessions.take(r.Context(), id); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: session expired, or another attestation of it is under way: start again with POST /kbs/v0/auth", ErrUnauthenticated)
	}
	rep, err := b.attest.Verify(r.Context(), bundle, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: sess.Nonce})
	if err != nil {
		return fmt.Errorf("%w: attestation failed (the session's nonce is spent: start again with POST /kbs/v0/auth): %w", ErrUnauthenticated, err)
	}
	if initData != nil {
		if err := initData.check(bundle.TEE, rep.Claims); err != nil {
			b.log.WarnContext(r.Context(), "kbs attestation refused: init-data does not match the evidence", "tee", bundle.TEE, "reason", err, "requester", web.ClientAddr(r))
			return fmt.Errorf("%w: attestation failed (the session's nonce is spent: start again with POST /kbs/v0/auth): %w", ErrUnauthenticated, err)
		}
	}
	a, err := b.authenticate(r.Context(), rep.Token)
	if err != nil {
		return err
	}
	if err := b.sessions.attest(r.Context(), id, sess, rep.Token); err != nil {
		return err
	}
	attrs := []any{"tee", a.View.TEE, "status", a.View.Status, "insecure", a.View.Insecure, "init_data", initData != nil, "requester", web.ClientAddr(r)}
	if bundle.TEE == attestation.Sim && sim.IsSample(bundle.Evidence) {
		b.log.WarnContext(r.Context(), "kbs session attested with Trustee sample evidence: "+sim.SampleWarning, attrs...)
	} else {
		b.log.InfoContext(r.Context(), "kbs session attested", attrs...)
	}
	setSessionCookie(w, id, sess.Expires)
	return web.WriteJSON(w, http.StatusOK, map[string]string{"token": string(rep.Token)})
}

// bundleFor turns a KBS Attestation into a kura bundle and checks that it
// binds the session nonce and the tee-pubkey. tee-evidence is a kura
// bundle, or a Confidential Containers attester's native evidence for the
// session's TEE, bare (protocol 0.1) or as the primary evidence of a
// composite (protocol 0.4); native evidence is bound under the CoCo rule of
// its protocol (docs/spec/keybroker.md §2.1).
func (b *Broker) bundleFor(sess *session, att *kbsAttestation) (*attestation.Bundle, error) {
	if b.compat == CompatTrustee && (att.RuntimeData == nil || att.TEEPubKey != nil) {
		return nil, fmt.Errorf("%w: protocol 0.4.0 puts tee-pubkey in runtime-data", ErrBadRequest)
	}
	teePubKey := att.TEEPubKey // protocol 0.1.0
	if rd := att.RuntimeData; rd != nil {
		if subtle.ConstantTimeCompare([]byte(rd.Nonce), []byte(base64.StdEncoding.EncodeToString(sess.Nonce))) != 1 {
			return nil, fmt.Errorf("%w: runtime-data nonce is not this session's challenge", ErrUnauthenticated)
		}
		teePubKey = rd.TEEPubKey
	}
	// Either way the evidence itself must bind the session nonce (below).
	pub, err := CanonicalJWK(teePubKey)
	if err != nil {
		return nil, fmt.Errorf("%w: tee-pubkey: %v", ErrBadRequest, err)
	}
	ev, rule, err := primaryEvidence(att.TEEEvidence)
	if err != nil {
		return nil, err
	}
	if b.compat == CompatTrustee && rule != attestation.BindingCoCoKBS04 {
		return nil, fmt.Errorf(`%w: protocol 0.4.0 tee-evidence is {"primary_evidence": ..., "additional_evidence": ""}`, ErrBadRequest)
	}
	if !isKuraBundle(ev) {
		bundle, err := coco.ParseEvidence(sess.TEE, ev)
		if err != nil {
			return nil, fmt.Errorf("%w: tee-evidence is neither a kura evidence bundle nor %s evidence from a CoCo attester: %w", ErrBadRequest, sess.TEE, err)
		}
		if err := b.checkSample(bundle); err != nil {
			return nil, err
		}
		bundle.RuntimeData = attestation.RuntimeData{Nonce: bytes.Clone(sess.Nonce), PublicKey: pub}
		bundle.Binding = rule
		if err := bundle.Check(); err != nil {
			return nil, fmt.Errorf("%w: tee-pubkey cannot be bound under the CoCo rule: %w", ErrBadRequest, err)
		}
		return bundle, nil
	}
	bundle, err := attestation.ParseBundle(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: tee-evidence must be a kura evidence bundle (docs/spec/attestation.md §2): %w", ErrBadRequest, err)
	}
	if bundle.TEE != sess.TEE {
		return nil, fmt.Errorf("%w: evidence is %s but the session was opened for %s", ErrBadRequest, bundle.TEE, sess.TEE)
	}
	if err := b.checkSample(bundle); err != nil {
		return nil, err
	}
	if !bytes.Equal(bundle.RuntimeData.Nonce, sess.Nonce) || !bytes.Equal(bundle.RuntimeData.PublicKey, pub) {
		return nil, fmt.Errorf("%w: the evidence's runtime data must carry the session nonce and the canonical tee-pubkey (docs/spec/keybroker.md §3)", ErrUnauthenticated)
	}
	return bundle, nil
}

// checkSample refuses Trustee's sample evidence outside dev mode: it is
// unsigned, so anyone can make it (docs/spec/keybroker.md §2.1).
func (b *Broker) checkSample(bundle *attestation.Bundle) error {
	if bundle.TEE == attestation.Sim && sim.IsSample(bundle.Evidence) && !b.devMode {
		return fmt.Errorf("%w: Trustee sample evidence is refused: %s, so this broker accepts it only in dev mode (kura kbs serve --dev)", ErrUnauthenticated, sim.SampleWarning)
	}
	return nil
}

// attachProof puts the decision's log inclusion proof in the answer's
// AuditProofHeader. Without a log, or if the proof does not come in time,
// the answer goes without it (the decision stands; its AuditSeqHeader
// finds it in the log later).
func (b *Broker) attachProof(ctx context.Context, w http.ResponseWriter, seq int64) {
	if b.prove == nil {
		b.log.WarnContext(ctx, "inclusion proof asked for, but this broker has no transparency log", "audit_seq", seq)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, proofWait)
	defer cancel()
	proof, err := b.prove(ctx, seq)
	if err != nil {
		b.log.WarnContext(ctx, "inclusion proof for a decision not attached", "audit_seq", seq, "err", err)
		return
	}
	w.Header().Set(AuditProofHeader, base64.StdEncoding.EncodeToString(proof))
}

// kbsCompositeEvidence is the tee-evidence of KBS protocol 0.4: the primary
// attester's evidence and a JSON string mapping device TEEs to theirs.
type kbsCompositeEvidence struct {
	PrimaryEvidence    json.RawMessage `json:"primary_evidence"`
	AdditionalEvidence *string         `json:"additional_evidence"`
}

// primaryEvidence unwraps tee-evidence: a JSON string holding the evidence
// (protocol 0.1.0), a protocol 0.4 composite (whose primary_evidence may
// again be the evidence or a JSON string holding it), or the evidence
// itself. It returns the evidence and the CoCo binding rule its protocol
// implies.
// Additional (device) evidence is refused: kura cannot verify it, and the
// binding rule would then cover evidence nobody checked.
func primaryEvidence(ev json.RawMessage) (json.RawMessage, attestation.Binding, error) {
	var s string
	if json.Unmarshal(ev, &s) == nil { // protocol 0.1.0 sends evidence as a JSON string
		ev = []byte(s)
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(ev, &members) != nil {
		return ev, attestation.BindingCoCoKBS01, nil
	}
	if _, ok := members["primary_evidence"]; !ok {
		return ev, attestation.BindingCoCoKBS01, nil
	}
	var c kbsCompositeEvidence
	dec := json.NewDecoder(bytes.NewReader(ev))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, "", fmt.Errorf("%w: tee-evidence composite: %v", ErrBadRequest, err)
	}
	switch {
	case c.AdditionalEvidence == nil:
		return nil, "", fmt.Errorf("%w: tee-evidence composite has no additional_evidence string", ErrBadRequest)
	case *c.AdditionalEvidence != "":
		return nil, "", fmt.Errorf("%w: tee-evidence carries additional (device) evidence, which this broker does not verify: attest without device attesters", ErrBadRequest)
	}
	ev = c.PrimaryEvidence
	if json.Unmarshal(ev, &s) == nil { // the primary evidence as a JSON string holding it
		ev = []byte(s)
	}
	return ev, attestation.BindingCoCoKBS04, nil
}

// isKuraBundle reports whether evidence is shaped like a kura evidence
// bundle (docs/spec/attestation.md §2) rather than a CoCo attester's
// evidence: a JSON object with "version", "tee" and "evidence".
func isKuraBundle(ev []byte) bool {
	var members map[string]json.RawMessage
	if json.Unmarshal(ev, &members) != nil {
		return true // not an object: let ParseBundle say what is wrong
	}
	_, v := members["version"]
	_, t := members["tee"]
	_, e := members["evidence"]
	return v && t && e
}

// CanonicalJWK returns the RFC 8785 (JCS) form of a JWK, the bytes a kura
// attester binds as its runtime-data public key.
func CanonicalJWK(raw json.RawMessage) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || len(m) == 0 {
		return nil, errors.New("not a JSON object")
	}
	if _, err := parseRecipient(raw); err != nil {
		return nil, err
	}
	return marshalCompact(m) // map keys sorted; JWK members are strings and numbers-free
}

func (b *Broker) handleResource(w http.ResponseWriter, r *http.Request) error {
	path := r.PathValue("repo") + "/" + r.PathValue("type") + "/" + r.PathValue("tag")
	a, err := b.attestedOf(r)
	if err != nil {
		// Unauthenticated requests are decisions too: record them.
		rec := &store.AuditRecord{Decision: "refused", Reason: err.Error(), Resource: path, Requester: web.ClientAddr(r)}
		if aerr := b.record(r.Context(), rec); aerr != nil {
			return fmt.Errorf("record decision: %w", aerr)
		}
		return err
	}
	var query map[string]string // nil and empty read alike, also in policy input
	if r.URL.RawQuery != "" {
		query = map[string]string{}
		for k, v := range r.URL.Query() {
			query[k] = strings.Join(v, ",")
		}
	}
	var collaboration []byte
	if r.Method == http.MethodPost {
		if collaboration, err = web.ReadBody(w, r, MaxCollaborationSize); err != nil {
			return err
		}
		if len(collaboration) == 0 {
			return fmt.Errorf("%w: POST %s needs the collaboration file as its body", ErrBadRequest, RunResourcePrefix)
		}
	}
	out, seq, err := b.Release(r.Context(), a, path, query, collaboration, web.ClientAddr(r))
	// Released or refused, the answer names the decision's audit record,
	// which is also its broker_seq in the transparency log.
	if seq > 0 {
		w.Header().Set(AuditSeqHeader, strconv.FormatInt(seq, 10))
		if r.Header.Get(AuditProofHeader) == "wait" {
			b.attachProof(r.Context(), w, seq)
		}
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(out)
	return err
}

// attestedOf authenticates a resource request by Bearer token or session.
func (b *Broker) attestedOf(r *http.Request) (*Attested, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, errNoToken{fmt.Errorf("%w: Authorization must be a Bearer attestation token", ErrUnauthenticated)}
		}
		return b.authenticate(r.Context(), []byte(strings.TrimSpace(tok)))
	}
	id, err := sessionID(r)
	if err != nil {
		return nil, errNoToken{err}
	}
	tok, ok, err := b.sessions.token(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if !ok {
		if _, pending, err := b.sessions.pending(r.Context(), id); err != nil {
			return nil, err
		} else if pending {
			return nil, errNoToken{fmt.Errorf("%w: session not attested: POST /kbs/v0/attest first", ErrUnauthenticated)}
		}
		return nil, errNoToken{errNoSession}
	}
	return b.authenticate(r.Context(), tok)
}
