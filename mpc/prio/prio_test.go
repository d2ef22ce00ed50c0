package prio

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func newTask(t testing.TB, typ Type, bits, length uint) *Task {
	t.Helper()
	task, err := NewTask(nil, typ, bits, length)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func newPair(t testing.TB, task *Task) (leader, helper *Aggregator) {
	t.Helper()
	leader, err := NewAggregator(task, 0)
	if err != nil {
		t.Fatal(err)
	}
	helper, err = NewAggregator(task, 1)
	if err != nil {
		t.Fatal(err)
	}
	return leader, helper
}

func collect(t testing.TB, task *Task, leader, helper *Aggregator, n uint64) []uint64 {
	t.Helper()
	s0, err := leader.AggregateShare()
	if err != nil {
		t.Fatal(err)
	}
	s1, err := helper.AggregateShare()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unshard(task.Public(), s0, s1, n)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestAggregate checks the aggregate of a few hundred random reports
// against the plaintext sum, for every type.
func TestAggregate(t *testing.T) {
	const n = 300
	for _, tc := range []struct {
		name         string
		typ          Type
		bits, length uint
		gen          func(r *rand.Rand, want []uint64) Measurement
	}{
		{"count", TypeCount, 0, 0, func(r *rand.Rand, want []uint64) Measurement {
			b := r.IntN(2) == 1
			if b {
				want[0]++
			}
			return Count(b)
		}},
		{"sum32", TypeSum, 32, 0, func(r *rand.Rand, want []uint64) Measurement {
			v := r.Uint64N(1 << 32)
			want[0] += v
			return Sum(v)
		}},
		{"histogram10", TypeHistogram, 0, 10, func(r *rand.Rand, want []uint64) Measurement {
			i := r.Uint64N(10)
			want[i]++
			return Bucket(i)
		}},
		{"sumvec4x8", TypeSumVec, 8, 4, func(r *rand.Rand, want []uint64) Measurement {
			v := make([]uint64, 4)
			for i := range v {
				v[i] = r.Uint64N(256)
				want[i] += v[i]
			}
			return Vector(v)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := newTask(t, tc.typ, tc.bits, tc.length)
			client, err := NewClient(task.Public())
			if err != nil {
				t.Fatal(err)
			}
			leader, helper := newPair(t, task)
			want := make([]uint64, max(1, tc.length))
			r := rand.New(rand.NewPCG(1, uint64(tc.typ)))
			for range n {
				rep, err := client.Shard(tc.gen(r, want), NewNonce())
				if err != nil {
					t.Fatal(err)
				}
				if err := Prepare(leader, helper, rep); err != nil {
					t.Fatal(err)
				}
			}
			if got := collect(t, task, leader, helper, n); !slices.Equal(got, want) {
				t.Fatalf("aggregate %v, want %v", got, want)
			}
		})
	}
}

func TestClientRefusesInvalidMeasurement(t *testing.T) {
	for _, tc := range []struct {
		name string
		task *Task
		m    Measurement
	}{
		{"sum over bits", newTask(t, TypeSum, 8, 0), Sum(256)},
		{"bucket out of range", newTask(t, TypeHistogram, 0, 10), Bucket(10)},
		{"vector too short", newTask(t, TypeSumVec, 8, 4), Vector([]uint64{1, 2, 3})},
		{"vector entry over bits", newTask(t, TypeSumVec, 8, 2), Vector([]uint64{1, 256})},
		{"wrong type", newTask(t, TypeCount, 0, 0), Sum(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Shard(tc.task, tc.m, NewNonce()); !errors.Is(err, ErrMeasurement) {
				t.Fatalf("Shard: %v, want ErrMeasurement", err)
			}
		})
	}
}

func TestTaskValidate(t *testing.T) {
	for _, tc := range []struct {
		typ          Type
		bits, length uint
	}{
		{TypeCount, 1, 0}, {TypeSum, 0, 0}, {TypeSum, 64, 0}, {TypeHistogram, 0, 0},
		{TypeHistogram, 0, MaxLength + 1}, {TypeSumVec, 0, 4}, {TypeSumVec, 8, MaxLength}, {9, 0, 0},
	} {
		if _, err := NewTask(nil, tc.typ, tc.bits, tc.length); !errors.Is(err, ErrTask) {
			t.Errorf("NewTask(%v, %d, %d): %v, want ErrTask", tc.typ, tc.bits, tc.length, err)
		}
	}
	task := newTask(t, TypeCount, 0, 0)
	if _, err := NewAggregator(task.Public(), 0); !errors.Is(err, ErrTask) {
		t.Errorf("aggregator without verify key: %v, want ErrTask", err)
	}
	if _, err := NewAggregator(task, 2); !errors.Is(err, ErrTask) {
		t.Errorf("aggregator 2: %v, want ErrTask", err)
	}
}
