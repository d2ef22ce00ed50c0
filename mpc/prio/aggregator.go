package prio

import (
	"fmt"
	"sync"
)

// Aggregator is one of the two aggregators of a task: aggregator 0 (the
// leader in DAP terms) or 1 (the helper). It verifies reports together with
// the other aggregator, remembers the nonces it has seen, and sums the
// output shares of the reports that verified. It is safe for concurrent
// use.
type Aggregator struct {
	task *Task
	id   uint8
	v    scheme

	mu      sync.Mutex
	seen    map[Nonce]struct{}
	agg     any
	reports uint64
}

// NewAggregator returns aggregator id (0 or 1) of task t. t must carry the
// verify key.
func NewAggregator(t *Task, id uint8) (*Aggregator, error) {
	if id >= Aggregators {
		return nil, fmt.Errorf("%w: aggregator id %d", ErrTask, id)
	}
	if t.VerifyKey == (VerifyKey{}) {
		return nil, fmt.Errorf("%w: aggregator needs the task's verify key", ErrTask)
	}
	v, err := newScheme(t)
	if err != nil {
		return nil, err
	}
	tc := *t
	return &Aggregator{task: &tc, id: id, v: v, seen: make(map[Nonce]struct{}), agg: v.aggregateInit()}, nil
}

// ID returns the aggregator's id, 0 or 1.
func (a *Aggregator) ID() uint8 { return a.id }

// Pending is one report in preparation at one aggregator, between
// [Aggregator.PrepInit] and [Aggregator.PrepNext].
type Pending struct {
	agg   *Aggregator
	nonce Nonce
	state any
	done  bool
}

// Nonce returns the report's nonce.
func (p *Pending) Nonce() Nonce { return p.nonce }

// PrepInit starts preparing a report from its [ReportShare] message. It
// refuses a share for another task or aggregator, a malformed share, and a
// nonce already seen ([ErrReplay]); the nonce counts as seen from here on,
// whether or not the report later verifies. It returns the [PrepShare]
// message for the aggregator that combines them.
func (a *Aggregator) PrepInit(reportShare []byte) (*Pending, []byte, error) {
	var rs ReportShare
	if err := rs.UnmarshalBinary(reportShare); err != nil {
		return nil, nil, err
	}
	if rs.Task != a.task.ID || rs.Aggregator != a.id {
		return nil, nil, fmt.Errorf("%w: report share for aggregator %d of another task or aggregator", ErrTask, rs.Aggregator)
	}
	a.mu.Lock()
	_, replay := a.seen[rs.Nonce]
	if !replay {
		a.seen[rs.Nonce] = struct{}{}
	}
	a.mu.Unlock()
	if replay {
		return nil, nil, fmt.Errorf("%w: nonce %x", ErrReplay, rs.Nonce)
	}
	state, share, err := a.v.prepInit(&a.task.VerifyKey, &rs.Nonce, a.id, rs.Public, rs.Input)
	if err != nil {
		return nil, nil, err
	}
	ps := PrepShare{Task: a.task.ID, Nonce: rs.Nonce, Aggregator: a.id, Share: share}
	msg, err := ps.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	return &Pending{agg: a, nonce: rs.Nonce, state: state}, msg, nil
}

// PrepSharesToPrep combines the two aggregators' [PrepShare] messages of
// one report and decides whether the report is valid. A report whose proof
// does not verify is refused with [ErrInvalidReport]; both aggregators must
// then drop it. Otherwise it returns the [PrepMessage] for both aggregators.
func (a *Aggregator) PrepSharesToPrep(share0, share1 []byte) ([]byte, error) {
	var s [Aggregators]PrepShare
	for i, b := range [][]byte{share0, share1} {
		if err := s[i].UnmarshalBinary(b); err != nil {
			return nil, err
		}
		if s[i].Task != a.task.ID || s[i].Aggregator != uint8(i) {
			return nil, fmt.Errorf("%w: prep share %d of another task or aggregator", ErrTask, i)
		}
	}
	if s[0].Nonce != s[1].Nonce {
		return nil, fmt.Errorf("%w: prep shares of two reports", ErrMismatch)
	}
	msg, err := a.v.prepSharesToPrep(s[0].Share, s[1].Share)
	if err != nil {
		return nil, err
	}
	pm := PrepMessage{Task: a.task.ID, Nonce: s[0].Nonce, Message: msg}
	return pm.MarshalBinary()
}

// PrepNext finishes preparing p with the report's [PrepMessage] and adds
// its output share to the aggregate share.
func (a *Aggregator) PrepNext(p *Pending, prepMessage []byte) error {
	if p == nil || p.agg != a {
		return fmt.Errorf("%w: pending report of another aggregator", ErrTask)
	}
	var pm PrepMessage
	if err := pm.UnmarshalBinary(prepMessage); err != nil {
		return err
	}
	if pm.Task != a.task.ID {
		return fmt.Errorf("%w: prep message of another task", ErrTask)
	}
	if pm.Nonce != p.nonce {
		return fmt.Errorf("%w: prep message of another report", ErrMismatch)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.done {
		return fmt.Errorf("%w: report %x already prepared", ErrReplay, p.nonce)
	}
	out, err := a.v.prepNext(p.state, pm.Message)
	if err != nil {
		return err
	}
	p.done, p.state = true, nil
	a.v.aggregateUpdate(a.agg, out)
	a.reports++
	return nil
}

// Reports returns the number of reports aggregated so far.
func (a *Aggregator) Reports() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reports
}

// AggregateShare returns the [AggregateShare] message of the reports
// aggregated so far, for the collector.
func (a *Aggregator) AggregateShare() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	share, err := a.v.encodeAggShare(a.agg)
	if err != nil {
		return nil, err
	}
	s := AggregateShare{Task: a.task.ID, Aggregator: a.id, Reports: a.reports, Share: share}
	return s.MarshalBinary()
}

// Prepare runs the whole preparation of one report between the two
// aggregators, the exchange of messages modelled as function calls: each
// aggregator runs PrepInit on its report share, the leader combines the
// prep shares, and both run PrepNext on the prep message. A report refused
// at any step is aggregated by neither.
func Prepare(leader, helper *Aggregator, r *Report) error {
	if leader.id != 0 || helper.id != 1 || leader.task.ID != helper.task.ID {
		return fmt.Errorf("%w: need aggregators 0 and 1 of one task", ErrTask)
	}
	var (
		pending [Aggregators]*Pending
		shares  [Aggregators][]byte
	)
	for i, a := range []*Aggregator{leader, helper} {
		rs, err := r.Share(a.id)
		if err != nil {
			return err
		}
		if pending[i], shares[i], err = a.PrepInit(rs); err != nil {
			return fmt.Errorf("aggregator %d: %w", a.id, err)
		}
	}
	msg, err := leader.PrepSharesToPrep(shares[0], shares[1])
	if err != nil {
		return fmt.Errorf("aggregator 0: %w", err)
	}
	for i, a := range []*Aggregator{leader, helper} {
		if err := a.PrepNext(pending[i], msg); err != nil {
			return fmt.Errorf("aggregator %d: %w", a.id, err)
		}
	}
	return nil
}
