package prio

import "fmt"

// Unshard is the collector's step: it checks that the two [AggregateShare]
// messages are aggregators 0 and 1 of task t and both cover numReports
// reports, and returns the aggregate. The result has one entry for count
// and sum, and Length entries for histogram and sumvec.
func Unshard(t *Task, aggShare0, aggShare1 []byte, numReports uint64) ([]uint64, error) {
	v, err := newScheme(t)
	if err != nil {
		return nil, err
	}
	var s [Aggregators]AggregateShare
	for i, b := range [][]byte{aggShare0, aggShare1} {
		if err := s[i].UnmarshalBinary(b); err != nil {
			return nil, err
		}
		if s[i].Task != t.ID || s[i].Aggregator != uint8(i) {
			return nil, fmt.Errorf("%w: aggregate share %d of another task or aggregator", ErrTask, i)
		}
		if s[i].Reports != numReports {
			return nil, fmt.Errorf("%w: aggregator %d aggregated %d reports, want %d", ErrMismatch, i, s[i].Reports, numReports)
		}
	}
	return v.unshard(s[0].Share, s[1].Share, numReports)
}
