package prio

import (
	"bytes"
	"encoding"
	"testing"
)

// corpus returns real messages of every kind from every task type.
func corpus(f *testing.F) (tasks []*Task, reportShares, prepShares, prepMsgs, aggShares [][]byte) {
	for _, tc := range []struct {
		typ          Type
		bits, length uint
		m            Measurement
	}{
		{TypeCount, 0, 0, Count(true)},
		{TypeSum, 32, 0, Sum(12345)},
		{TypeHistogram, 0, 10, Bucket(4)},
		{TypeSumVec, 8, 4, Vector([]uint64{1, 2, 3, 255})},
	} {
		task := newTask(f, tc.typ, tc.bits, tc.length)
		tasks = append(tasks, task)
		leader, helper := newPair(f, task)
		r, err := Shard(task, tc.m, NewNonce())
		if err != nil {
			f.Fatal(err)
		}
		var pend [2]*Pending
		var ps [2][]byte
		for i, a := range []*Aggregator{leader, helper} {
			rs, _ := r.Share(uint8(i))
			reportShares = append(reportShares, rs)
			if pend[i], ps[i], err = a.PrepInit(rs); err != nil {
				f.Fatal(err)
			}
		}
		prepShares = append(prepShares, ps[:]...)
		msg, err := leader.PrepSharesToPrep(ps[0], ps[1])
		if err != nil {
			f.Fatal(err)
		}
		prepMsgs = append(prepMsgs, msg)
		for i, a := range []*Aggregator{leader, helper} {
			if err := a.PrepNext(pend[i], msg); err != nil {
				f.Fatal(err)
			}
			s, _ := a.AggregateShare()
			aggShares = append(aggShares, s)
		}
	}
	if len(reportShares) == 0 || len(prepShares) == 0 || len(prepMsgs) == 0 || len(aggShares) == 0 {
		f.Fatal("empty seed corpus")
	}
	return
}

type message interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

// roundTrip checks that an accepted message re-encodes byte for byte.
func roundTrip(t *testing.T, m message, data []byte) {
	if err := m.UnmarshalBinary(data); err != nil {
		return
	}
	out, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("accepted %T does not marshal: %v", m, err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("%T round trip differs:\n in %x\nout %x", m, data, out)
	}
}

func FuzzReportShare(f *testing.F) {
	_, seeds, _, _, _ := corpus(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, new(ReportShare), data) })
}

func FuzzPrepShare(f *testing.F) {
	_, _, seeds, _, _ := corpus(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, new(PrepShare), data) })
}

func FuzzPrepMessage(f *testing.F) {
	_, _, _, seeds, _ := corpus(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, new(PrepMessage), data) })
}

func FuzzAggregateShare(f *testing.F) {
	_, _, _, _, seeds := corpus(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { roundTrip(t, new(AggregateShare), data) })
}

// FuzzPrepInit feeds arbitrary report shares, with their circl-encoded
// public and input shares, to aggregators of every type: they must refuse
// or accept without panicking.
func FuzzPrepInit(f *testing.F) {
	tasks, seeds, _, _, _ := corpus(f)
	for i, s := range seeds {
		f.Add(uint8(i/2), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		task := tasks[int(which)%len(tasks)]
		var rs ReportShare
		if rs.UnmarshalBinary(data) == nil {
			rs.Task = task.ID // reach the circl decoders
			data, _ = rs.MarshalBinary()
		}
		a, err := NewAggregator(task, rs.Aggregator)
		if err != nil {
			t.Fatal(err)
		}
		_, _, _ = a.PrepInit(data)
	})
}

// FuzzPrepSharesToPrep feeds arbitrary prep share pairs to the combining
// aggregator of every type.
func FuzzPrepSharesToPrep(f *testing.F) {
	tasks, _, seeds, _, _ := corpus(f)
	for i := 0; i+1 < len(seeds); i += 2 {
		f.Add(uint8(i/2), seeds[i], seeds[i+1])
	}
	aggs := make([]*Aggregator, len(tasks))
	for i, task := range tasks {
		aggs[i], _ = newPair(f, task)
	}
	f.Fuzz(func(t *testing.T, which uint8, s0, s1 []byte) {
		i := int(which) % len(tasks)
		for _, s := range []*[]byte{&s0, &s1} {
			var ps PrepShare
			if ps.UnmarshalBinary(*s) == nil {
				ps.Task = tasks[i].ID
				*s, _ = ps.MarshalBinary()
			}
		}
		_, _ = aggs[i].PrepSharesToPrep(s0, s1)
	})
}

// FuzzUnshard feeds arbitrary aggregate shares to the collector of every
// type.
func FuzzUnshard(f *testing.F) {
	tasks, _, _, _, seeds := corpus(f)
	for i := 0; i+1 < len(seeds); i += 2 {
		f.Add(uint8(i/2), seeds[i], seeds[i+1], uint64(1))
	}
	f.Fuzz(func(t *testing.T, which uint8, s0, s1 []byte, n uint64) {
		task := tasks[int(which)%len(tasks)]
		for _, s := range []*[]byte{&s0, &s1} {
			var as AggregateShare
			if as.UnmarshalBinary(*s) == nil {
				as.Task = task.ID
				*s, _ = as.MarshalBinary()
			}
		}
		_, _ = Unshard(task, s0, s1, n)
	})
}
