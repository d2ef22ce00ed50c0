package prio

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/cloudflare/circl/vdaf/prio3/arith/fp128"
	"github.com/cloudflare/circl/vdaf/prio3/arith/fp64"
)

// addOne64 adds 1 to field element i of an fp64 leader input share: the
// leader share opens with the measurement share, element by element, so
// this adds 1 to element i of the encoded measurement.
func addOne64(t *testing.T, share []byte, i int) []byte {
	t.Helper()
	out := bytes.Clone(share)
	var x, one fp64.Fp
	el := out[i*fp64.Size : (i+1)*fp64.Size]
	if err := x.UnmarshalBinary(el); err != nil {
		t.Fatal(err)
	}
	one.SetOne()
	x.AddAssign(&one)
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	copy(el, b)
	return out
}

func addOne128(t *testing.T, share []byte, i int) []byte {
	t.Helper()
	out := bytes.Clone(share)
	var x, one fp128.Fp
	el := out[i*fp128.Size : (i+1)*fp128.Size]
	if err := x.UnmarshalBinary(el); err != nil {
		t.Fatal(err)
	}
	one.SetOne()
	x.AddAssign(&one)
	b, err := x.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	copy(el, b)
	return out
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 1
	return out
}

// TestPreparationRefusesInvalidReports crafts reports a client library
// would never produce, by editing the leader's measurement share (the
// shares are additive, so this edits the measurement) or by tampering
// with any share, and checks that preparation refuses each and that
// neither aggregator aggregates it, while an honest report in the same
// batch still counts.
func TestPreparationRefusesInvalidReports(t *testing.T) {
	sum8 := newTask(t, TypeSum, 8, 0)
	hist := newTask(t, TypeHistogram, 0, 10)
	count := newTask(t, TypeCount, 0, 0)
	vec := newTask(t, TypeSumVec, 4, 3)
	for _, tc := range []struct {
		name   string
		task   *Task
		m      Measurement
		tamper func(t *testing.T, r *Report)
		want   error
	}{
		{"sum over the bit length", sum8, Sum(255), func(t *testing.T, r *Report) {
			// Sum(8 bits) encodes v as bits(v) || bits(v): make the top
			// bit of both halves 2, so they still agree but v = 383.
			r.Inputs[0] = addOne64(t, addOne64(t, r.Inputs[0], 7), 15)
		}, ErrInvalidReport},
		{"count of 2", count, Count(true), func(t *testing.T, r *Report) {
			r.Inputs[0] = addOne64(t, r.Inputs[0], 0)
		}, ErrInvalidReport},
		{"histogram with two ones", hist, Bucket(3), func(t *testing.T, r *Report) {
			r.Inputs[0] = addOne128(t, r.Inputs[0], 5)
		}, ErrInvalidReport},
		{"sumvec entry over bits", vec, Vector([]uint64{15, 0, 1}), func(t *testing.T, r *Report) {
			r.Inputs[0] = addOne128(t, r.Inputs[0], 3)
		}, ErrInvalidReport},
		{"sum helper seed flipped", sum8, Sum(7), func(t *testing.T, r *Report) {
			r.Inputs[1] = flip(r.Inputs[1], 0)
		}, ErrInvalidReport},
		{"sum leader proof flipped", sum8, Sum(7), func(t *testing.T, r *Report) {
			r.Inputs[0] = flip(r.Inputs[0], len(r.Inputs[0])-fp64.Size)
		}, ErrInvalidReport},
		{"histogram public share flipped", hist, Bucket(1), func(t *testing.T, r *Report) {
			r.Public = flip(r.Public, 40)
		}, ErrInvalidReport},
		{"histogram helper blind flipped", hist, Bucket(1), func(t *testing.T, r *Report) {
			r.Inputs[1] = flip(r.Inputs[1], 40)
		}, ErrInvalidReport},
		{"histogram leader share flipped", hist, Bucket(1), func(t *testing.T, r *Report) {
			r.Inputs[0] = flip(r.Inputs[0], 0)
		}, ErrInvalidReport},
		{"histogram nonce changed", hist, Bucket(1), func(t *testing.T, r *Report) {
			r.Nonce[0] ^= 1
		}, ErrInvalidReport},
		{"sum nonce changed", sum8, Sum(1), func(t *testing.T, r *Report) {
			r.Nonce[0] ^= 1 // changes the query randomness only; still valid
		}, nil},
		{"input shares swapped", sum8, Sum(1), func(t *testing.T, r *Report) {
			r.Inputs[0], r.Inputs[1] = r.Inputs[1], r.Inputs[0]
		}, ErrMalformed},
		{"leader share truncated", sum8, Sum(1), func(t *testing.T, r *Report) {
			r.Inputs[0] = r.Inputs[0][:len(r.Inputs[0])-1]
		}, ErrMalformed},
		{"helper share with trailing byte", hist, Bucket(1), func(t *testing.T, r *Report) {
			r.Inputs[1] = append(r.Inputs[1], 0)
		}, ErrMalformed},
		{"non-canonical field element", sum8, Sum(1), func(t *testing.T, r *Report) {
			copy(r.Inputs[0], bytes.Repeat([]byte{0xff}, fp64.Size))
		}, ErrMalformed},
		{"public share on a sum", sum8, Sum(1), func(t *testing.T, r *Report) {
			r.Public = make([]byte, 64)
		}, ErrMalformed},
		{"other task", sum8, Sum(1), func(t *testing.T, r *Report) {
			r.Task[0] ^= 1
		}, ErrTask},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leader, helper := newPair(t, tc.task)
			honest, err := Shard(tc.task, tc.m, NewNonce())
			if err != nil {
				t.Fatal(err)
			}
			if err := Prepare(leader, helper, honest); err != nil {
				t.Fatal(err)
			}
			bad, err := Shard(tc.task, tc.m, NewNonce())
			if err != nil {
				t.Fatal(err)
			}
			tc.tamper(t, bad)
			err = Prepare(leader, helper, bad)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Prepare: %v, want %v", err, tc.want)
			}
			if leader.Reports() != 1 || helper.Reports() != 1 {
				t.Fatalf("aggregated %d/%d reports, want only the honest one", leader.Reports(), helper.Reports())
			}
			if got, want := collect(t, tc.task, leader, helper, 1), plain(tc.m, tc.task.Length); !slices.Equal(got, want) {
				t.Fatalf("aggregate %v, want the honest report's %v", got, want)
			}
		})
	}
}

// TestWrongVerifyKey: an aggregator with another verify key computes other
// query randomness, so the proof does not verify.
func TestWrongVerifyKey(t *testing.T) {
	task := newTask(t, TypeHistogram, 0, 10)
	leader, _ := newPair(t, task)
	other := *task
	other.VerifyKey[0] ^= 1
	helper, err := NewAggregator(&other, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Shard(task, Bucket(2), NewNonce())
	if err != nil {
		t.Fatal(err)
	}
	if err := Prepare(leader, helper, r); !errors.Is(err, ErrInvalidReport) {
		t.Fatalf("Prepare: %v, want ErrInvalidReport", err)
	}
}

func TestReplay(t *testing.T) {
	task := newTask(t, TypeSum, 16, 0)
	leader, helper := newPair(t, task)
	nonce := NewNonce()
	r, err := Shard(task, Sum(1000), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if err := Prepare(leader, helper, r); err != nil {
		t.Fatal(err)
	}
	// The same report again, and a fresh report reusing the nonce.
	again, err := Shard(task, Sum(2000), nonce)
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range []*Report{r, again} {
		if err := Prepare(leader, helper, rep); !errors.Is(err, ErrReplay) {
			t.Fatalf("Prepare: %v, want ErrReplay", err)
		}
	}
	// The helper refuses a replay on its own too.
	rs, _ := r.Share(1)
	if _, _, err := helper.PrepInit(rs); !errors.Is(err, ErrReplay) {
		t.Fatalf("helper PrepInit: %v, want ErrReplay", err)
	}
	if got := collect(t, task, leader, helper, 1); got[0] != 1000 {
		t.Fatalf("aggregate %d, want 1000", got[0])
	}
}

// TestMessageBinding: prep shares and messages of one report are refused
// for another, and a pending report is finished only once.
func TestMessageBinding(t *testing.T) {
	task := newTask(t, TypeHistogram, 0, 4)
	leader, helper := newPair(t, task)
	var (
		pend   [2][2]*Pending
		shares [2][2][]byte
	)
	for i := range 2 {
		r, err := Shard(task, Bucket(uint64(i)), NewNonce())
		if err != nil {
			t.Fatal(err)
		}
		for j, a := range []*Aggregator{leader, helper} {
			rs, _ := r.Share(uint8(j))
			if pend[i][j], shares[i][j], err = a.PrepInit(rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := leader.PrepSharesToPrep(shares[0][0], shares[1][1]); !errors.Is(err, ErrMismatch) {
		t.Fatalf("mixed prep shares: %v, want ErrMismatch", err)
	}
	if _, err := leader.PrepSharesToPrep(shares[0][1], shares[0][0]); !errors.Is(err, ErrTask) {
		t.Fatalf("swapped prep shares: %v, want ErrTask", err)
	}
	msg0, err := leader.PrepSharesToPrep(shares[0][0], shares[0][1])
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.PrepNext(pend[1][0], msg0); !errors.Is(err, ErrMismatch) {
		t.Fatalf("prep message of another report: %v, want ErrMismatch", err)
	}
	if err := helper.PrepNext(pend[0][0], msg0); !errors.Is(err, ErrTask) {
		t.Fatalf("pending of another aggregator: %v, want ErrTask", err)
	}
	if err := leader.PrepNext(pend[0][0], msg0); err != nil {
		t.Fatal(err)
	}
	if err := leader.PrepNext(pend[0][0], msg0); !errors.Is(err, ErrReplay) {
		t.Fatalf("second PrepNext: %v, want ErrReplay", err)
	}
}

func TestUnshardRefusesMismatch(t *testing.T) {
	task := newTask(t, TypeCount, 0, 0)
	leader, helper := newPair(t, task)
	r, _ := Shard(task, Count(true), NewNonce())
	if err := Prepare(leader, helper, r); err != nil {
		t.Fatal(err)
	}
	s0, _ := leader.AggregateShare()
	s1, _ := helper.AggregateShare()
	if _, err := Unshard(task, s0, s1, 2); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong count: %v, want ErrMismatch", err)
	}
	if _, err := Unshard(task, s1, s0, 1); !errors.Is(err, ErrTask) {
		t.Fatalf("swapped shares: %v, want ErrTask", err)
	}
	if _, err := Unshard(task, s0, s1[:len(s1)-1], 1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated share: %v, want ErrMalformed", err)
	}
}

// plain is the aggregate of the single measurement m.
func plain(m Measurement, length uint) []uint64 {
	switch m.typ {
	case TypeHistogram:
		out := make([]uint64, length)
		out[m.v] = 1
		return out
	case TypeSumVec:
		return m.vec
	}
	return []uint64{m.v}
}
