package prio

import (
	"crypto/rand"
	"fmt"
)

// Report is one client's sharded measurement.
type Report struct {
	Task  TaskID
	Nonce Nonce
	// Public is circl's encoding of the Prio3 public share, sent to both
	// aggregators (empty for count and sum).
	Public []byte
	// Inputs[i] is circl's encoding of aggregator i's input share; it must
	// reach aggregator i only, over a confidential channel.
	Inputs [Aggregators][]byte
}

// Share returns the message for aggregator agg: the public share and that
// aggregator's input share.
func (r *Report) Share(agg uint8) ([]byte, error) {
	if agg >= Aggregators {
		return nil, fmt.Errorf("%w: aggregator %d", ErrTask, agg)
	}
	s := ReportShare{Task: r.Task, Nonce: r.Nonce, Aggregator: agg, Public: r.Public, Input: r.Inputs[agg]}
	return s.MarshalBinary()
}

// Client shards measurements for one task.
type Client struct {
	task TaskID
	v    scheme
}

// NewClient returns a client for t. t needs no verify key (see
// [Task.Public]).
func NewClient(t *Task) (*Client, error) {
	v, err := newScheme(t)
	if err != nil {
		return nil, err
	}
	return &Client{task: t.ID, v: v}, nil
}

// Shard splits m into a public share and one input share per aggregator,
// bound to the task and to nonce. Each report must have a fresh nonce
// ([NewNonce]); aggregators refuse a nonce they have already seen.
// A measurement outside the task's range is refused with [ErrMeasurement].
func (c *Client) Shard(m Measurement, nonce Nonce) (*Report, error) {
	seed := make([]byte, c.v.randSize())
	_, _ = rand.Read(seed) // crypto/rand.Read never fails
	pub, in, err := c.v.shard(m, &nonce, seed)
	clear(seed)
	if err != nil {
		return nil, err
	}
	return &Report{Task: c.task, Nonce: nonce, Public: pub, Inputs: in}, nil
}

// Shard is NewClient(t) followed by Client.Shard, for a single report.
func Shard(t *Task, m Measurement, nonce Nonce) (*Report, error) {
	c, err := NewClient(t)
	if err != nil {
		return nil, err
	}
	return c.Shard(m, nonce)
}
