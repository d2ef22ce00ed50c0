package psi

import (
	"fmt"

	"github.com/cloudflare/circl/group"
)

// Receiver is party B: it answers one Request and learns nothing but the
// number of A's distinct identifiers. A Receiver serves one session and is
// not safe for concurrent use.
type Receiver struct {
	cfg      Config
	ids      [][]byte
	payloads [][]byte // payloads[i] goes with ids[i] (ModeGroups)
	key      group.Scalar
	done     bool
}

// NewReceiver returns party B for a session over ids. Repeated identifiers
// are sent once. ids may hold at most cfg.MaxElements distinct identifiers.
func NewReceiver(cfg Config, ids [][]byte) (*Receiver, error) {
	return NewPayloadReceiver(cfg, ids, nil)
}

// NewPayloadReceiver is NewReceiver for a ModeGroups session in which each
// identifier carries a payload, payloads[i] for ids[i], all of one size of
// at most MaxPayloadSize bytes: the Response sends each distinct
// identifier's (its first occurrence's) payload next to its blinded
// identifier, in the same shuffled order. The payloads are opaque to this
// package and sent as they are: the caller encrypts them.
func NewPayloadReceiver(cfg Config, ids, payloads [][]byte) (*Receiver, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if payloads != nil {
		if cfg.Mode != ModeGroups || len(payloads) != len(ids) {
			return nil, fmt.Errorf("%w: %d payloads for %d identifiers in a %v session", ErrConfig, len(payloads), len(ids), cfg.Mode)
		}
		for _, p := range payloads {
			if len(p) != cfg.PayloadSize || len(p) == 0 {
				return nil, fmt.Errorf("%w: payloads must all be Config.PayloadSize (%d) bytes", ErrConfig, cfg.PayloadSize)
			}
		}
	}
	r := &Receiver{cfg: cfg}
	seen := make(map[string]struct{}, len(ids))
	for i, id := range ids {
		if _, dup := seen[string(id)]; dup {
			continue
		}
		seen[string(id)] = struct{}{}
		r.ids = append(r.ids, id)
		if payloads != nil {
			r.payloads = append(r.payloads, payloads[i])
		}
	}
	if len(r.ids) > cfg.MaxElements {
		return nil, fmt.Errorf("%w: %d distinct identifiers, limit %d", ErrConfig, len(r.ids), cfg.MaxElements)
	}
	if err := shuffle(len(r.ids), func(i, j int) {
		r.ids[i], r.ids[j] = r.ids[j], r.ids[i]
		if r.payloads != nil {
			r.payloads[i], r.payloads[j] = r.payloads[j], r.payloads[i]
		}
	}); err != nil {
		return nil, err
	}
	if r.key, err = newKey(); err != nil {
		return nil, err
	}
	return r, nil
}

// Respond checks req and returns round 2. It may be called once; the
// secret scalar is zeroised whether it succeeds or not.
func (r *Receiver) Respond(req *Request) (*Response, error) {
	resp, _, err := r.RespondWithPayloads(req, nil, 0)
	return resp, err
}

// RespondWithPayloads is Respond for a ModeGroups request whose elements
// each come with a payload of size bytes, payloads[i*size:(i+1)*size] with
// req.Elements[i] (sent apart from the Request: kura's agents send the
// initiator's encrypted values so). It returns the payloads in the order
// of the Response's Reblinded, shuffled within each group with them, for
// the caller to transform (rerandomise) and send back: the initiator can
// then add up its own payloads over each group's matches
// (Result.RequestMatches) without learning which of its identifiers they
// belong to.
func (r *Receiver) RespondWithPayloads(req *Request, payloads []byte, size int) (*Response, []byte, error) {
	resp, perm, err := r.respond(req)
	if err != nil || payloads == nil {
		return resp, nil, err
	}
	if size < 1 || size > MaxPayloadSize || len(payloads) != size*len(req.Elements) {
		return nil, nil, fmt.Errorf("%w: %d payload bytes of %d each for %d request elements", ErrMalformed, len(payloads), size, len(req.Elements))
	}
	out := make([]byte, len(payloads))
	for i, from := range perm {
		copy(out[i*size:(i+1)*size], payloads[from*size:(from+1)*size])
	}
	return resp, out, nil
}

// respond is Respond; perm[i] is the request element whose reblinding is
// Reblinded[i].
func (r *Receiver) respond(req *Request) (*Response, []int, error) {
	if r.done {
		return nil, nil, fmt.Errorf("%w: request already answered", ErrReplay)
	}
	r.done = true
	defer r.Close()
	if req.Session != r.cfg.Session {
		return nil, nil, ErrSession
	}
	if req.Mode != r.cfg.Mode {
		return nil, nil, fmt.Errorf("%w: request for %v, session is %v", ErrMode, req.Mode, r.cfg.Mode)
	}
	if len(req.Elements) == 0 {
		return nil, nil, fmt.Errorf("%w: empty request", ErrMalformed)
	}
	if len(req.Elements) > r.cfg.MaxElements {
		return nil, nil, fmt.Errorf("%w: %d request elements, limit %d", ErrTooLarge, len(req.Elements), r.cfg.MaxElements)
	}
	if err := distinct(req.Elements); err != nil {
		return nil, nil, fmt.Errorf("request: %w", err)
	}
	if err := checkGroups(req.Mode, req.Groups, len(req.Elements)); err != nil {
		return nil, nil, err
	}
	resp := &Response{
		Session:   r.cfg.Session,
		Mode:      r.cfg.Mode,
		Reblinded: make([]Element, len(req.Elements)),
		Elements:  make([]Element, len(r.ids)),
	}
	if err := exp(r.cfg.Workers, req.Elements, r.key, resp.Reblinded); err != nil {
		return nil, nil, fmt.Errorf("request: %w", err)
	}
	hashBlind(r.cfg.Workers, r.cfg.dst(), r.ids, r.key, resp.Elements)
	zeroise(r.key)
	if len(r.payloads) > 0 {
		resp.PayloadSize = len(r.payloads[0])
		resp.Payloads = make([]byte, 0, resp.PayloadSize*len(r.payloads))
		for _, p := range r.payloads {
			resp.Payloads = append(resp.Payloads, p...)
		}
	}
	perm := make([]int, len(resp.Reblinded))
	for i := range perm {
		perm[i] = i
	}
	shuffleBoth := func(lo, n int) error {
		return shuffle(n, func(i, j int) {
			i, j = lo+i, lo+j
			resp.Reblinded[i], resp.Reblinded[j] = resp.Reblinded[j], resp.Reblinded[i]
			perm[i], perm[j] = perm[j], perm[i]
		})
	}
	switch r.cfg.Mode {
	case ModeCardinality:
		if err := shuffleBoth(0, len(resp.Reblinded)); err != nil {
			return nil, nil, err
		}
	case ModeGroups:
		for lo, g := range groupRanges(req.Groups) {
			if err := shuffleBoth(lo, g); err != nil {
				return nil, nil, err
			}
		}
	}
	return resp, perm, nil
}

// Close zeroises the secret scalar, best effort; the Receiver cannot be
// used afterwards.
func (r *Receiver) Close() {
	zeroise(r.key)
	r.done = true
}

// groupRanges yields the offset and size of each group.
func groupRanges(sizes []int) func(yield func(int, int) bool) {
	return func(yield func(int, int) bool) {
		lo := 0
		for _, g := range sizes {
			if !yield(lo, g) {
				return
			}
			lo += g
		}
	}
}
