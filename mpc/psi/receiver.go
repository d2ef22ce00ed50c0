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
	if r.done {
		return nil, fmt.Errorf("%w: request already answered", ErrReplay)
	}
	r.done = true
	defer r.Close()
	if req.Session != r.cfg.Session {
		return nil, ErrSession
	}
	if req.Mode != r.cfg.Mode {
		return nil, fmt.Errorf("%w: request for %v, session is %v", ErrMode, req.Mode, r.cfg.Mode)
	}
	if len(req.Elements) == 0 {
		return nil, fmt.Errorf("%w: empty request", ErrMalformed)
	}
	if len(req.Elements) > r.cfg.MaxElements {
		return nil, fmt.Errorf("%w: %d request elements, limit %d", ErrTooLarge, len(req.Elements), r.cfg.MaxElements)
	}
	if err := distinct(req.Elements); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	if err := checkGroups(req.Mode, req.Groups, len(req.Elements)); err != nil {
		return nil, err
	}
	resp := &Response{
		Session:   r.cfg.Session,
		Mode:      r.cfg.Mode,
		Reblinded: make([]Element, len(req.Elements)),
		Elements:  make([]Element, len(r.ids)),
	}
	if err := exp(r.cfg.Workers, req.Elements, r.key, resp.Reblinded); err != nil {
		return nil, fmt.Errorf("request: %w", err)
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
	switch r.cfg.Mode {
	case ModeCardinality:
		if err := shuffleElements(resp.Reblinded); err != nil {
			return nil, err
		}
	case ModeGroups:
		for lo, g := range groupRanges(req.Groups) {
			if err := shuffleElements(resp.Reblinded[lo : lo+g]); err != nil {
				return nil, err
			}
		}
	}
	return resp, nil
}

// Close zeroises the secret scalar, best effort; the Receiver cannot be
// used afterwards.
func (r *Receiver) Close() {
	zeroise(r.key)
	r.done = true
}

func shuffleElements(list []Element) error {
	return shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
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
