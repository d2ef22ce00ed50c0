package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"slices"
	"strings"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/mpc/psi"
	"github.com/kura-cc/kura/result"
)

// A run among three or more owners (docs/spec/mpc.md §3.2) is a chain of
// blindings the initiator relays: its grouped identifiers and each
// responder's own go through every responder's secret exponent, the last
// responder intersects the responders' lists, and the initiator counts,
// per group, its identifiers in that intersection. Counts only.

// chainPending is a responder's state for a chain run.
type chainPending struct {
	blinder *psi.Blinder
	gamma   *psi.Blinder // the last responder's second exponent
	own     bool         // its own list was sent
	// identifiers and plain are what its statement reports: its distinct
	// identifiers and the plaintext bytes it held.
	identifiers int
	plain       int64
	// transcript hashes, in order, the SHA-256 of every request body and
	// answer of the run after Start; its sum is the statement's
	// response_sha256.
	transcript hash.Hash
}

// position returns the index of this responder's dataset among the
// analysis's responders, and their number.
func (p *plan) position() (int, int) {
	first := initiatorDataset(p.an)
	i, n := -1, 0
	for _, id := range collab.ReadsOf(p.an) {
		if id == first {
			continue
		}
		if id == p.mine.ID {
			i = n
		}
		n++
	}
	return i, n
}

func chained(an *collab.Analysis) bool { return len(an.Aggregate.Joins) > 1 }

// handleOwn answers a chain run's request for the responder's own list:
// its identifiers hashed and raised to its exponent (the last responder's
// also to its second), shuffled.
func (a *Agent) handleOwn(w http.ResponseWriter, r *http.Request) error {
	pr, _, err := a.take(w, r, func(pr *pendingRun) bool { return pr.chain != nil && !pr.chain.own },
		func(*pendingRun) int { return 0 })
	if err != nil {
		return err
	}
	cp := pr.chain
	in, plain, err := a.input(r.Context(), pr.p)
	if err != nil {
		a.dropChain(pr)
		return err
	}
	var ids [][]byte
	for _, g := range in.Groups {
		ids = append(ids, g.IDs...)
	}
	list, err := cp.blinder.Hash(ids)
	if err == nil && cp.gamma != nil {
		list, err = cp.gamma.Reblind(list, nil)
	}
	if err != nil {
		a.dropChain(pr)
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	pos, _ := pr.p.position()
	out, err := (&psi.Chain{Session: pr.session, Lists: []psi.ChainList{{Tag: uint8(pos + 1), Elements: list}}}).MarshalBinary()
	if err != nil {
		a.dropChain(pr)
		return err
	}
	cp.own, cp.identifiers, cp.plain = true, len(list), plain
	record(cp.transcript, nil, out)
	a.keep(pr)
	a.log.InfoContext(r.Context(), "mpc chain: own list sent", "run", pr.p.rc.RunID, "identifiers", len(list))
	return writeAnswer(w, out, "")
}

// handleStep answers a chain run's relayed lists: a responder that is not
// the last raises every list to its exponent (the initiator's within its
// groups) and returns them; the last one also removes its second exponent
// from its own list, intersects the responders' lists and returns the
// initiator's list and the intersection. Either way it then signs its
// statement and forgets its exponents.
func (a *Agent) handleStep(w http.ResponseWriter, r *http.Request) error {
	pr, body, err := a.take(w, r, func(pr *pendingRun) bool { return pr.chain != nil && pr.chain.own },
		func(pr *pendingRun) int {
			_, n := pr.p.position()
			return 4 + (n+1)*(4+8+a.cfg.MaxIdentifiers*psi.ElementSize) + 4*psi.MaxGroups
		})
	if err != nil {
		return err
	}
	defer a.dropChain(pr)
	cp := pr.chain
	pos, n := pr.p.position()
	var in psi.Chain
	if err := in.UnmarshalBinary(body); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	x, ok := in.List(0)
	want := n - 1 // the others' lists; the last responder gets its own back too
	if cp.gamma != nil {
		want = n
	}
	if in.Session != pr.session || !ok || len(in.Lists) != want+1 {
		return fmt.Errorf("%w: want the initiator's list and %d responders' lists of session %.16s…", ErrMalformed, want, pr.start.Session)
	}
	if pos == 0 {
		// The first responder gets the initiator's list as signed.
		first, err := (&psi.Chain{Session: pr.session, Lists: []psi.ChainList{*x}}).MarshalBinary()
		if err != nil || digest(first) != pr.start.RequestSHA256 {
			return fmt.Errorf("%w: the initiator's list is not the one it signed", ErrTampered)
		}
	}
	out := &psi.Chain{Session: pr.session}
	xs, err := cp.blinder.Reblind(x.Elements, x.Sizes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out.Lists = append(out.Lists, psi.ChainList{Tag: 0, Sizes: x.Sizes, Elements: xs})
	var full [][]psi.Element
	for _, l := range in.Lists {
		if l.Tag == 0 {
			continue
		}
		if int(l.Tag) > n || pos < n-1 && int(l.Tag) == pos+1 {
			return fmt.Errorf("%w: list %d: the run has %d responders, and a responder's own list comes back to it only at the last step", ErrMalformed, l.Tag, n)
		}
		var e []psi.Element
		switch {
		case cp.gamma != nil && int(l.Tag) == pos+1:
			e, err = cp.gamma.Unblind(l.Elements) // its own: already raised to β
		default:
			e, err = cp.blinder.Reblind(l.Elements, nil)
		}
		if err != nil {
			return fmt.Errorf("%w: list %d: %w", ErrMalformed, l.Tag, err)
		}
		if cp.gamma != nil {
			full = append(full, e)
		} else {
			out.Lists = append(out.Lists, psi.ChainList{Tag: l.Tag, Elements: e})
		}
	}
	if cp.gamma != nil {
		t, err := psi.Intersect(full...)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		out.Lists = append(out.Lists, psi.ChainList{Tag: 1, Elements: t})
	}
	answer, err := out.MarshalBinary()
	if err != nil {
		return err
	}
	record(cp.transcript, body, answer)
	stmt, err := a.signStatement(&result.AgentStatement{
		Role: result.RoleResponder, Run: pr.p.run, Party: a.cfg.Identity.Name(),
		Dataset: pr.p.mine.ID, SealedSHA256: pr.p.mine.Descriptor.SealedSHA256,
		Session: pr.start.Session, RequestSHA256: pr.start.RequestSHA256,
		ResponseSHA256: hex.EncodeToString(cp.transcript.Sum(nil)), Epsilon: pr.start.Epsilon,
		Identifiers: cp.identifiers, PlaintextBytes: cp.plain,
	})
	if err != nil {
		return err
	}
	a.log.InfoContext(r.Context(), "mpc chain step answered; exponents wiped", "run", pr.p.rc.RunID, "position", pos+1, "of", n, "last", cp.gamma != nil)
	return writeAnswer(w, answer, stmt)
}

func (a *Agent) dropChain(pr *pendingRun) {
	pr.chain.blinder.Close()
	if pr.chain.gamma != nil {
		pr.chain.gamma.Close()
	}
}

// newChain makes a responder's exponents for a chain run.
func (a *Agent) newChain(p *plan, session psi.SessionID) (*chainPending, error) {
	cp := &chainPending{transcript: sha256.New()}
	var err error
	if cp.blinder, err = psi.NewBlinder(session, a.cfg.Workers); err != nil {
		return nil, err
	}
	if pos, n := p.position(); pos == n-1 {
		if cp.gamma, err = psi.NewBlinder(session, a.cfg.Workers); err != nil {
			cp.blinder.Close()
			return nil, err
		}
	}
	return cp, nil
}

// record adds a request and its answer to a transcript.
func record(t hash.Hash, req, answer []byte) {
	a, b := sha256.Sum256(req), sha256.Sum256(answer)
	t.Write(a[:])
	t.Write(b[:])
}

// RunChain is Run for an analysis among three or more owners, counts
// only: peers maps each responder's dataset id to its agent's base URL.
func (a *Agent) RunChain(ctx context.Context, c *collab.Collaboration, analysisID string, peers map[string]string) (*Output, error) {
	b, err := a.begin(ctx, c, analysisID, true)
	if err != nil {
		return nil, err
	}
	defer clear(b.runKey)
	p, log := b.p, b.log
	for _, ds := range p.responders {
		if peers[ds.ID] == "" {
			return nil, fmt.Errorf("%w: no peer for dataset %q (%s's agent)", ErrRefused, ds.ID, ds.Owner)
		}
	}
	alpha, err := psi.NewBlinder(b.session, a.cfg.Workers)
	if err != nil {
		return nil, err
	}
	defer alpha.Close()
	x, sizes, err := alpha.HashGroups(groupIDs(b.groups))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	request, err := (&psi.Chain{Session: b.session, Lists: []psi.ChainList{{Tag: 0, Sizes: sizes, Elements: x}}}).MarshalBinary()
	if err != nil {
		return nil, err
	}
	stmt := &result.AgentStatement{
		Role: result.RoleInitiator, Run: p.run, Party: a.cfg.Identity.Name(),
		Dataset: p.mine.ID, SealedSHA256: p.mine.Descriptor.SealedSHA256,
		Session: hex.EncodeToString(b.session[:]), RequestSHA256: digest(request),
		Identifiers: len(x), PlaintextBytes: b.plain, SignedAt: a.cfg.Now().UTC(),
	}
	if p.eps != nil {
		stmt.Epsilon = p.eps.String()
	}
	start, err := result.SignAgent(stmt, a.cfg.Identity)
	if err != nil {
		return nil, err
	}
	file, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	startBody, err := json.Marshal(&Start{Collaboration: file, Statement: start})
	if err != nil {
		return nil, err
	}
	k := len(p.responders)
	urls := make([]string, k)
	transcripts := make([]hash.Hash, k)
	lists := make([]psi.ChainList, k) // each responder's list, as far as it got
	for i, ds := range p.responders {
		base := strings.TrimRight(peers[ds.ID], "/") + "/v1/mpc/runs"
		transcripts[i] = sha256.New()
		var acc Accepted
		if _, err := a.post(ctx, base, "application/json", startBody, 64<<10, &acc); err != nil {
			return nil, fmt.Errorf("%s's agent: %w", ds.Owner, err)
		}
		urls[i] = base + "/" + p.rc.RunID
	}
	for i := range k {
		hdr, err := a.post(ctx, urls[i]+"/own", "application/octet-stream", nil, int64(64+a.cfg.MaxIdentifiers*psi.ElementSize), nil)
		if err != nil {
			return nil, fmt.Errorf("%s's agent: %w", p.responders[i].Owner, err)
		}
		record(transcripts[i], nil, hdr.body)
		var own psi.Chain
		l, ok := (*psi.ChainList)(nil), false
		if err := own.UnmarshalBinary(hdr.body); err == nil {
			l, ok = own.List(uint8(i + 1))
		}
		if !ok || own.Session != b.session || len(own.Lists) != 1 {
			return nil, fmt.Errorf("%w: %s's own list", ErrMalformed, p.responders[i].Owner)
		}
		lists[i] = *l
	}
	xl := psi.ChainList{Tag: 0, Sizes: sizes, Elements: x}
	statements := map[string]*result.Envelope{p.mine.ID: start}
	var t []psi.Element
	for i := range k {
		msg := &psi.Chain{Session: b.session, Lists: []psi.ChainList{xl}}
		for j := range k {
			if j != i || i == k-1 {
				msg.Lists = append(msg.Lists, lists[j])
			}
		}
		body, err := msg.MarshalBinary()
		if err != nil {
			return nil, err
		}
		hdr, err := a.post(ctx, urls[i]+"/step", "application/octet-stream", body, int64(len(body)+64), nil)
		if err != nil {
			return nil, fmt.Errorf("%s's agent: %w", p.responders[i].Owner, err)
		}
		record(transcripts[i], body, hdr.body)
		env, err := a.checkChainStatement(p, p.responders[i], hdr.statement, stmt, transcripts[i])
		if err != nil {
			return nil, err
		}
		statements[p.responders[i].ID] = env
		var out psi.Chain
		if err := out.UnmarshalBinary(hdr.body); err != nil || out.Session != b.session {
			return nil, fmt.Errorf("%w: %s's answer: %v", ErrMalformed, p.responders[i].Owner, err)
		}
		nx, ok := out.List(0)
		if !ok || !slices.Equal(nx.Sizes, sizes) || len(nx.Elements) != len(x) {
			return nil, fmt.Errorf("%w: %s changed the initiator's list", ErrTampered, p.responders[i].Owner)
		}
		xl = *nx
		if i == k-1 {
			tl, ok := out.List(1)
			if !ok || len(out.Lists) != 2 {
				return nil, fmt.Errorf("%w: the last responder's answer has no intersection", ErrMalformed)
			}
			t = tl.Elements
			break
		}
		for j := range k {
			if j == i {
				continue
			}
			l, ok := out.List(uint8(j + 1))
			if !ok || len(l.Elements) != len(lists[j].Elements) {
				return nil, fmt.Errorf("%w: %s's answer lacks list %d", ErrTampered, p.responders[i].Owner, j+1)
			}
			lists[j] = *l
		}
	}
	ta, err := alpha.Reblind(t, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: the intersection: %w", ErrMalformed, err)
	}
	counts, err := psi.CountIn(xl.Elements, sizes, ta)
	if err != nil {
		return nil, err
	}
	res, err := a.release(p, b.in, b.groups, counts, b.dropped, nil)
	if err != nil {
		return nil, err
	}
	out, err := a.sign(p, b.runKey, file, res, statements)
	if err != nil {
		return nil, err
	}
	out.RunID = p.rc.RunID
	log.InfoContext(ctx, "mpc chain run completed", "responders", k, "groups", len(b.groups), "rows", len(res.Rows), "suppressed_rows", res.SuppressedRows)
	return out, nil
}

// checkChainStatement checks a responder's statement: signed with the key
// on its owner's card, for this run, dataset, session and request, and
// naming the transcript of exactly what this agent sent and received.
func (a *Agent) checkChainStatement(p *plan, ds *collab.Dataset, header string, start *result.AgentStatement, transcript hash.Hash) (*result.Envelope, error) {
	raw, err := base64.StdEncoding.DecodeString(header)
	if err != nil || header == "" {
		return nil, fmt.Errorf("%w: %s's statement is missing or not base64", ErrTampered, ds.Owner)
	}
	var env result.Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%w: %s's statement: %v", ErrTampered, ds.Owner, err)
	}
	st, err := result.VerifyAgent(&env, p.m.Party(ds.Owner).Card)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTampered, err)
	}
	switch {
	case st.Role != result.RoleResponder || !bytes.Equal(st.Run, p.run) || st.Dataset != ds.ID || st.SealedSHA256 != ds.Descriptor.SealedSHA256:
		return nil, fmt.Errorf("%w: %s's statement is for another run or dataset", ErrTampered, ds.Owner)
	case st.Session != start.Session || st.RequestSHA256 != start.RequestSHA256:
		return nil, fmt.Errorf("%w: %s answered another session or request", ErrTampered, ds.Owner)
	case st.ResponseSHA256 != hex.EncodeToString(transcript.Sum(nil)):
		return nil, fmt.Errorf("%w: %s's statement names messages other than those exchanged", ErrTampered, ds.Owner)
	}
	return &env, nil
}
