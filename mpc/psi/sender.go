package psi

import (
	"fmt"
	"slices"

	"github.com/cloudflare/circl/group"
)

// Sender is party A: it sends the Request and learns the Result. A Sender
// serves one session and is not safe for concurrent use.
type Sender struct {
	cfg  Config
	rows int
	// ids[i] is the identifier behind Request element i; rowsOf[i] lists
	// the input rows holding it.
	ids    [][]byte
	rowsOf [][]int
	// groups are the group sizes of a ModeGroups session: ids holds the
	// groups one after the other.
	groups []int
	key    group.Scalar
	sent   []Element
	state  int
}

const (
	senderNew = iota
	senderSent
	senderDone
)

// NewSender returns party A for a session over ids, one per input row.
// Repeated identifiers are sent once; the Result maps them back to every
// row. ids must hold at least one and at most cfg.MaxElements distinct
// identifiers.
func NewSender(cfg Config, ids [][]byte) (*Sender, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Mode == ModeGroups {
		return nil, fmt.Errorf("%w: a ModeGroups session starts with NewGroupSender", ErrConfig)
	}
	index := make(map[string]int, len(ids))
	s := &Sender{cfg: cfg, rows: len(ids)}
	for row, id := range ids {
		if i, ok := index[string(id)]; ok {
			s.rowsOf[i] = append(s.rowsOf[i], row)
			continue
		}
		index[string(id)] = len(s.ids)
		s.ids = append(s.ids, id)
		s.rowsOf = append(s.rowsOf, []int{row})
	}
	if len(s.ids) == 0 || len(s.ids) > cfg.MaxElements {
		return nil, fmt.Errorf("%w: %d distinct identifiers, want 1 to %d", ErrConfig, len(s.ids), cfg.MaxElements)
	}
	if err := shuffle(len(s.ids), func(i, j int) {
		s.ids[i], s.ids[j] = s.ids[j], s.ids[i]
		s.rowsOf[i], s.rowsOf[j] = s.rowsOf[j], s.rowsOf[i]
	}); err != nil {
		return nil, err
	}
	if s.key, err = newKey(); err != nil {
		return nil, err
	}
	return s, nil
}

// NewGroupSender returns party A for a ModeGroups session over groups of
// identifiers: A learns how many identifiers of each group B holds, B
// learns the size of each group. Repeated identifiers within a group are
// sent once; an identifier in two groups is refused (ErrConfig), since B
// would see it twice: the caller assigns each identifier to one group.
// Every group must hold at least one identifier.
func NewGroupSender(cfg Config, groups [][][]byte) (*Sender, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Mode != ModeGroups {
		return nil, fmt.Errorf("%w: NewGroupSender needs ModeGroups, not %v", ErrConfig, cfg.Mode)
	}
	if len(groups) == 0 || len(groups) > MaxGroups {
		return nil, fmt.Errorf("%w: %d groups, want 1 to %d", ErrConfig, len(groups), MaxGroups)
	}
	s := &Sender{cfg: cfg}
	groupOf := make(map[string]int)
	for g, ids := range groups {
		lo := len(s.ids)
		for _, id := range ids {
			if h, ok := groupOf[string(id)]; ok {
				if h != g {
					return nil, fmt.Errorf("%w: an identifier is in groups %d and %d", ErrConfig, h, g)
				}
				continue
			}
			groupOf[string(id)] = g
			s.ids = append(s.ids, id)
		}
		part := s.ids[lo:]
		if len(part) == 0 {
			return nil, fmt.Errorf("%w: group %d is empty", ErrConfig, g)
		}
		if err := shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] }); err != nil {
			return nil, err
		}
		s.groups = append(s.groups, len(part))
	}
	if len(s.ids) > cfg.MaxElements {
		return nil, fmt.Errorf("%w: %d distinct identifiers, limit %d", ErrConfig, len(s.ids), cfg.MaxElements)
	}
	if s.key, err = newKey(); err != nil {
		return nil, err
	}
	return s, nil
}

// Identifiers returns, in a ModeGroups session, the identifier behind each
// element of the Request, in the Request's order: A's own identifiers, for
// A to attach a payload to each (Receiver.RespondWithPayloads).
func (s *Sender) Identifiers() [][]byte { return slices.Clone(s.ids) }

// Request returns round 1. It may be called once.
func (s *Sender) Request() (*Request, error) {
	if s.state != senderNew {
		return nil, fmt.Errorf("%w: request already made", ErrReplay)
	}
	s.state = senderSent
	s.sent = make([]Element, len(s.ids))
	hashBlind(s.cfg.Workers, s.cfg.dst(), s.ids, s.key, s.sent)
	return &Request{Session: s.cfg.Session, Mode: s.cfg.Mode, Elements: append([]Element(nil), s.sent...), Groups: slices.Clone(s.groups)}, nil
}

// Finish checks resp against the request sent and computes the Result. It
// may be called once; the secret scalar is zeroised whether it succeeds or
// not.
func (s *Sender) Finish(resp *Response) (*Result, error) {
	switch s.state {
	case senderNew:
		return nil, fmt.Errorf("%w: no request sent", ErrMismatch)
	case senderDone:
		return nil, fmt.Errorf("%w: response already processed", ErrReplay)
	}
	s.state = senderDone
	defer s.Close()
	if resp.Session != s.cfg.Session {
		return nil, ErrSession
	}
	if resp.Mode != s.cfg.Mode {
		return nil, fmt.Errorf("%w: response for %v, session is %v", ErrMode, resp.Mode, s.cfg.Mode)
	}
	if len(resp.Elements) > s.cfg.MaxElements {
		return nil, fmt.Errorf("%w: %d response elements, limit %d", ErrTooLarge, len(resp.Elements), s.cfg.MaxElements)
	}
	if err := resp.check(); err != nil {
		return nil, err
	}
	if resp.PayloadSize != s.cfg.PayloadSize {
		return nil, fmt.Errorf("%w: payloads of %d bytes, the session has %d", ErrMismatch, resp.PayloadSize, s.cfg.PayloadSize)
	}
	if len(resp.Reblinded) != len(s.sent) {
		return nil, fmt.Errorf("%w: %d reblinded elements for %d sent", ErrMismatch, len(resp.Reblinded), len(s.sent))
	}
	if err := validate(s.cfg.Workers, resp.Reblinded); err != nil {
		return nil, fmt.Errorf("reblinded: %w", err)
	}
	// Round 3: (H(b)^β)^α, as a set of encodings.
	theirs := make([]Element, len(resp.Elements))
	if err := exp(s.cfg.Workers, resp.Elements, s.key, theirs); err != nil {
		return nil, fmt.Errorf("response: %w", err)
	}
	zeroise(s.key)
	index := make(map[Element]int, len(theirs))
	for j := range theirs {
		index[theirs[j]] = j
	}
	res := &Result{mode: s.cfg.Mode}
	if s.cfg.Mode == ModeGroups {
		res.groups = make([]int, len(s.groups))
		res.matches = make([][]int, len(s.groups))
		res.requestMatches = make([][]int, len(s.groups))
		i := 0
		for g, n := range s.groups {
			for range n {
				if j, ok := index[resp.Reblinded[i]]; ok {
					res.groups[g]++
					res.size++
					res.matches[g] = append(res.matches[g], j)
					res.requestMatches[g] = append(res.requestMatches[g], i)
				}
				i++
			}
		}
		return res, nil
	}
	if s.cfg.Mode == ModeCardinality {
		for i := range resp.Reblinded {
			if _, ok := index[resp.Reblinded[i]]; ok {
				res.size++
			}
		}
		return res, nil
	}
	res.rowsOf = make([][]int, 0)
	res.match = make([]int32, s.rows)
	for row := range res.match {
		res.match[row] = -1
	}
	for i := range resp.Reblinded {
		if _, ok := index[resp.Reblinded[i]]; !ok {
			continue
		}
		res.size++
		res.rowsOf = append(res.rowsOf, s.rowsOf[i])
		for _, row := range s.rowsOf[i] {
			res.match[row] = int32(len(res.rowsOf) - 1)
		}
	}
	return res, nil
}

// Close zeroises the secret scalar, best effort; the Sender cannot be used
// afterwards.
func (s *Sender) Close() {
	zeroise(s.key)
	s.state = senderDone
}
