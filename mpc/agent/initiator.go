package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/kura-cc/kura/internal/httpsig"
	"log/slog"
	"net/http"
	"strings"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/mpc/elgamal"
	"github.com/kura-cc/kura/mpc/psi"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
)

// Output is what a run leaves: the signed result bundle and deletion
// receipt, as for a TEE run, and the released result.
type Output struct {
	RunID   string
	Bundle  *result.File
	Receipt *result.File
	Result  *analysis.Result
}

// Run starts and completes a run of analysisID of c as the initiator,
// with the responder agent at peer (its base URL). The result is released
// under the output policy, encrypted to the analysis's receivers and signed
// by a fresh run key that this owner's statement and the responder's both
// vouch for.
func (a *Agent) Run(ctx context.Context, c *collab.Collaboration, analysisID, peer string) (*Output, error) {
	b, err := a.begin(ctx, c, analysisID, false)
	if err != nil {
		return nil, err
	}
	defer clear(b.runKey)
	p, log, session, in, plain, groups, dropped, run := b.p, b.log, b.session, b.in, b.plain, b.groups, b.dropped, b.p.run
	runKey, rc := b.runKey, b.p.rc
	sender, err := psi.NewGroupSender(a.psiConfig(p, session), groupIDs(groups))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	defer sender.Close()
	req, err := sender.Request()
	if err != nil {
		return nil, err
	}
	reqBytes, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	stmt := &result.AgentStatement{
		Role: result.RoleInitiator, Run: run, Party: a.cfg.Identity.Name(),
		Dataset: p.mine.ID, SealedSHA256: p.mine.Descriptor.SealedSHA256,
		Session: hex.EncodeToString(session[:]), RequestSHA256: digest(reqBytes),
		Identifiers: len(req.Elements), PlaintextBytes: plain, SignedAt: a.cfg.Now().UTC(),
	}
	if p.eps != nil {
		stmt.Epsilon = p.eps.String()
	}
	var vk *elgamal.KeyShare
	if len(p.sums) > 0 {
		if vk, err = elgamal.NewKeyShare(); err != nil {
			return nil, err
		}
		defer vk.Close()
		stmt.ValueKey = shareHex(vk)
	}
	start, err := result.SignAgent(stmt, a.cfg.Identity)
	if err != nil {
		return nil, err
	}
	file, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	x := &exchange{peer: strings.TrimRight(peer, "/"), p: p, session: session, request: reqBytes}
	if err := a.start(ctx, x, &Start{Collaboration: file, Statement: start}, vk, ownValues(groups, sender.Identifiers())); err != nil {
		log.WarnContext(ctx, "mpc run failed", "reason", err)
		return nil, err
	}
	var resp psi.Response
	if err := resp.UnmarshalBinary(x.psiResponse); err != nil {
		return nil, fmt.Errorf("%w: response: %w", ErrMalformed, err)
	}
	psiRes, err := sender.Finish(&resp)
	if err != nil {
		return nil, fmt.Errorf("%w: response: %w", ErrMalformed, err)
	}
	var sums [][]analysis.Exact
	if vk != nil {
		if sums, err = a.sums(ctx, x, vk, &resp, psiRes); err != nil {
			log.WarnContext(ctx, "mpc run failed", "reason", err)
			return nil, err
		}
	}
	peerStmt, err := a.checkPeer(x)
	if err != nil {
		log.WarnContext(ctx, "mpc run failed", "reason", err)
		return nil, err
	}
	res, err := a.release(p, in, groups, psiRes.Groups(), dropped, sums)
	if err != nil {
		return nil, err
	}
	out, err := a.sign(p, runKey, file, res, map[string]*result.Envelope{p.mine.ID: start, p.theirs.ID: peerStmt})
	if err != nil {
		return nil, err
	}
	out.RunID = rc.RunID
	log.InfoContext(ctx, "mpc run completed", "peer", p.peer.Name, "groups", len(groups), "rows", len(res.Rows), "suppressed_rows", res.SuppressedRows, "epsilon", stmt.Epsilon)
	return out, nil
}

// beginning is a run the initiator has authorised, recorded and read its
// side of.
type beginning struct {
	p       *plan
	runKey  ed25519.PrivateKey
	log     *slog.Logger
	session psi.SessionID
	in      *analysis.PSIInput
	plain   int64
	groups  []assigned
	dropped int
}

// begin makes the run key and context, authorises the run for this
// owner as initiator (chain: with two or more responders, else with one),
// records it in the ledger, and reads and groups this owner's identifiers.
func (a *Agent) begin(ctx context.Context, c *collab.Collaboration, analysisID string, chain bool) (_ *beginning, err error) {
	pub, runKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			clear(runKey)
		}
	}()
	m := c.Current()
	rc := &collab.RunContext{Version: collab.RunContextVersion, Collaboration: m.ID, ManifestHash: m.Hash(),
		Analysis: analysisID, RunID: collab.NewRunID(), SigningKey: pub}
	run, err := rc.Marshal()
	if err != nil {
		return nil, err
	}
	b := &beginning{runKey: runKey}
	if b.p, err = a.authorize(c, run, true); err != nil {
		a.log.WarnContext(ctx, "mpc run refused", "analysis", analysisID, "reason", err)
		return nil, err
	}
	if n := len(b.p.responders); chain != (n > 1) {
		return nil, fmt.Errorf("%w: analysis %q reads %d owners' datasets: Run takes one responder, RunChain two or more", ErrRefused, analysisID, n+1)
	}
	b.log = a.log.With("collaboration", m.ID, "analysis", analysisID, "run", rc.RunID)
	if b.session, err = psi.NewSessionID(nil); err != nil {
		return nil, err
	}
	if err := a.reserve(b.p, b.session); err != nil {
		b.log.WarnContext(ctx, "mpc run refused", "reason", err)
		return nil, err
	}
	if b.in, b.plain, err = a.input(ctx, b.p); err != nil {
		return nil, err
	}
	if b.groups, b.dropped, err = a.assign(b.p, b.in); err != nil {
		return nil, err
	}
	return b, nil
}

// exchange is what the initiator sent the responder and received.
type exchange struct {
	peer     string
	p        *plan
	session  psi.SessionID
	accepted Accepted
	request  []byte
	// response is the responder's answer to the request, psiResponse its
	// PSI response (the same unless the initiator's values came back with
	// it, returned), values the initiator's encrypted values sent.
	response, psiResponse, values, returned []byte
	// pk is the joint key of a run with sums.
	pk *elgamal.PublicKey
	// For sums: the encrypted sums sent and the partial decryptions
	// received.
	decryptRequest, decryptResponse []byte
	// statement is the responder's statement header, from its last answer.
	statement string
}

// start sends Start and then the request — with sums over the
// initiator's columns, with its values (values[i] for the request's
// element i) encrypted under the joint key, framed after it and signed.
func (a *Agent) start(ctx context.Context, x *exchange, s *Start, vk *elgamal.KeyShare, values [][]*int64) error {
	body, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := a.post(ctx, x.peer+"/v1/mpc/runs", "application/json", body, 64<<10, &x.accepted); err != nil {
		return err
	}
	if vk != nil {
		theirs, err := parseShare(x.accepted.ValueKey)
		if err != nil {
			return fmt.Errorf("the responder's value key: %w", err)
		}
		if x.pk, err = elgamal.JointKey(vk.Public(), theirs); err != nil {
			return fmt.Errorf("%w: the responder's value key: %w", ErrTampered, err)
		}
	}
	req := x.request
	valueSize := x.p.payloadSize(true)
	if valueSize > 0 {
		if x.values, err = a.encryptValues(x.p, x.pk, values, x.p.side(true)); err != nil {
			return err
		}
		req = frame(x.request, x.values)
	}
	limit := a.psiConfig(x.p, x.session).MaxMessageSize() + 4 + len(x.values)
	hdr, err := a.post(ctx, x.peer+"/v1/mpc/runs/"+x.p.rc.RunID+"/psi", "application/octet-stream", req, int64(limit), nil)
	if err != nil {
		return err
	}
	x.response, x.psiResponse, x.statement = hdr.body, hdr.body, hdr.statement
	if valueSize > 0 {
		if x.psiResponse, x.returned, err = unframe(hdr.body); err != nil {
			return err
		}
		if len(x.returned) != len(x.values) {
			return fmt.Errorf("%w: %d bytes of values returned for %d sent", ErrTampered, len(x.returned), len(x.values))
		}
	}
	return nil
}

// ownValues returns the initiator's values for each identifier, in the
// order ids (the request's) gives them; nil without sums over its columns.
func ownValues(groups []assigned, ids [][]byte) [][]*int64 {
	of := map[string][]*int64{}
	for _, g := range groups {
		for i, id := range g.ids {
			if g.values != nil {
				of[string(id)] = g.values[i]
			}
		}
	}
	if len(of) == 0 {
		return nil
	}
	out := make([][]*int64, len(ids))
	for i, id := range ids {
		out[i] = of[string(id)]
	}
	return out
}

// sums adds up the responder's encrypted values per group, has the
// responder partially decrypt the totals and decrypts them.
func (a *Agent) sums(ctx context.Context, x *exchange, vk *elgamal.KeyShare, resp *psi.Response, res *psi.Result) ([][]analysis.Exact, error) {
	cs, err := a.groupSums(x.p, x.pk, resp.Payloads, x.returned, res)
	if err != nil {
		return nil, err
	}
	if x.decryptRequest, err = elgamal.AppendCiphertexts(nil, cs, a.cfg.Workers); err != nil {
		return nil, err
	}
	hdr, err := a.post(ctx, x.peer+"/v1/mpc/runs/"+x.p.rc.RunID+"/decrypt", "application/octet-stream", x.decryptRequest, int64(4+len(cs)*elgamal.PointSize), nil)
	if err != nil {
		return nil, err
	}
	x.decryptResponse, x.statement = hdr.body, hdr.statement
	partials, err := parsePartials(hdr.body, len(cs))
	if err != nil {
		return nil, err
	}
	return decryptSums(x.p, cs, vk, partials, res.Groups())
}

// checkPeer checks the responder's statement: signed with the key on the
// other owner's card, for this run, its dataset, session and request,
// naming exactly the response bytes received — and, with sums, the value
// key it announced and the decryption exchange.
func (a *Agent) checkPeer(x *exchange) (*result.Envelope, error) {
	p := x.p
	raw, err := base64.StdEncoding.DecodeString(x.statement)
	if err != nil || x.statement == "" {
		return nil, fmt.Errorf("%w: the responder's statement header is missing or not base64", ErrTampered)
	}
	var env result.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%w: the responder's statement: %v", ErrTampered, err)
	}
	st, err := result.VerifyAgent(&env, p.peer.Card)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	switch {
	case st.Role != result.RoleResponder || !bytes.Equal(st.Run, p.run):
		return nil, fmt.Errorf("%w: the responder's statement is for another run", ErrTampered)
	case st.Dataset != p.theirs.ID || st.SealedSHA256 != p.theirs.Descriptor.SealedSHA256:
		return nil, fmt.Errorf("%w: the responder read dataset %q (%.16s…), the run reads %q", ErrTampered, st.Dataset, st.SealedSHA256, p.theirs.ID)
	case st.Session != hex.EncodeToString(x.session[:]) || st.RequestSHA256 != digest(x.request):
		return nil, fmt.Errorf("%w: the responder answered another session or request", ErrTampered)
	case st.ResponseSHA256 != digest(x.response):
		return nil, fmt.Errorf("%w: the response's SHA-256 is %.16s…, the responder signed %.16s…", ErrTampered, digest(x.response), st.ResponseSHA256)
	case len(p.sums) > 0 && (st.ValueKey != x.accepted.ValueKey || st.DecryptRequestSHA256 != digest(x.decryptRequest) || st.DecryptResponseSHA256 != digest(x.decryptResponse)):
		return nil, fmt.Errorf("%w: the responder's statement does not name the value key and decryption exchange this agent saw", ErrTampered)
	case x.values != nil && st.ValuesSHA256 != digest(x.values):
		return nil, fmt.Errorf("%w: the responder's statement does not name the encrypted values this agent sent", ErrTampered)
	}
	return &env, nil
}

type reply struct {
	body      []byte
	statement string
}

// post sends one request to a responder, signed with this owner's party
// key (SignatureContext); into, when set, receives a JSON answer.
func (a *Agent) post(ctx context.Context, url, ctype string, body []byte, limit int64, into any) (*reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ctype)
	card := a.cfg.Identity.Card()
	httpsig.Sign(req, body, SignatureContext, card.Fingerprint, a.cfg.Identity.Sign, a.cfg.Now())
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPeer, err)
	}
	defer resp.Body.Close()
	b, err := readAll(resp.Body, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPeer, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%w: %w", ErrPeer, web.ReadProblem("mpc agent", resp.StatusCode, b))
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPeer, err)
		}
	}
	return &reply{body: b, statement: resp.Header.Get(StatementHeader)}, nil
}

// assign puts each identifier in one group — the group with the smallest
// keyed hash of (identifier, group), under a key drawn for the run, so
// that the choice is neither predictable nor biased — and, without
// differential privacy, drops the groups with fewer distinct identifiers
// than the output policy's minimum, which could not be released anyway.
// It returns the groups kept, as indexes into in.Groups, and how many were
// dropped.
func (a *Agent) assign(p *plan, in *analysis.PSIInput) ([]assigned, int, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, 0, err
	}
	defer clear(key)
	best := map[string]int{}
	score := map[string][]byte{}
	for g := range in.Groups {
		for _, id := range in.Groups[g].IDs {
			mac := hmac.New(sha256.New, key)
			mac.Write(id)
			fmt.Fprintf(mac, "\x00%d", g)
			s := mac.Sum(nil)
			if old, ok := score[string(id)]; !ok || bytes.Compare(s, old) < 0 {
				score[string(id)], best[string(id)] = s, g
			}
		}
	}
	var out []assigned
	dropped := 0
	for g := range in.Groups {
		var as assigned
		for i, id := range in.Groups[g].IDs {
			if best[string(id)] == g {
				as.ids = append(as.ids, id)
				if in.Groups[g].Values != nil {
					as.values = append(as.values, in.Groups[g].Values[i])
				}
			}
		}
		if len(as.ids) == 0 || p.eps == nil && len(as.ids) < p.pol.MinDistinctIdentities {
			dropped++
			continue
		}
		as.group = g
		out = append(out, as)
	}
	if len(out) == 0 {
		return nil, 0, fmt.Errorf("%w: no group of dataset %q has the %d distinct identifiers the output policy requires: nothing can be released", ErrRefused, p.mine.ID, p.pol.MinDistinctIdentities)
	}
	return out, dropped, nil
}

type assigned struct {
	group  int
	ids    [][]byte
	values [][]*int64 // with ids, when the initiator's columns are summed
}

func groupIDs(gs []assigned) [][][]byte {
	out := make([][][]byte, len(gs))
	for i, g := range gs {
		out[i] = g.ids
	}
	return out
}

// sign seals the result to the receivers and signs the bundle and the
// receipt with the run key.
func (a *Agent) sign(p *plan, runKey ed25519.PrivateKey, file []byte, res *analysis.Result, statements map[string]*result.Envelope) (*Output, error) {
	output, err := res.Encode()
	if err != nil {
		return nil, err
	}
	var cards []*party.Card
	for _, name := range p.m.ReceiversOf(p.an) {
		cards = append(cards, p.m.Party(name).Card)
	}
	sealed, err := result.SealOutput(output, p.rc.RunID, cards)
	if err != nil {
		return nil, err
	}
	var inputs []result.Input
	var destroyed []result.Destroyed
	var agents []*result.Envelope
	for _, id := range collab.ReadsOf(p.an) {
		ds := p.m.Dataset(id)
		inputs = append(inputs, result.Input{Dataset: id, SealedSHA256: ds.Descriptor.SealedSHA256, KeyResource: ds.Descriptor.KeyBroker.Resource})
		destroyed = append(destroyed, result.Destroyed{Dataset: id, SealedSHA256: ds.Descriptor.SealedSHA256, KeyResource: ds.Descriptor.KeyBroker.Resource})
		agents = append(agents, statements[id])
	}
	now := a.cfg.Now().UTC()
	bundle, err := result.SignBundle(&result.Bundle{
		Run: p.run, CreatedAt: now, Inputs: inputs, OutputSHA256: digest(output),
		SuppressedRows: res.SuppressedRows, Outputs: sealed, Agents: agents, Collaboration: file,
	}, runKey)
	if err != nil {
		return nil, err
	}
	receipt, err := result.SignReceipt(&result.Receipt{
		Run: p.run, ResultDigest: result.DigestHex(bundle.Envelope.Payload), Destroyed: destroyed,
		DestroyedAt: now, Outcome: "completed", Agents: agents, Collaboration: file,
	}, runKey)
	if err != nil {
		return nil, err
	}
	return &Output{Bundle: bundle, Receipt: receipt, Result: res}, nil
}
