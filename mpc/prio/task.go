package prio

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Type is the kind of measurement a [Task] aggregates. The values are the
// Prio3 algorithm identifiers of draft-irtf-cfrg-vdaf.
type Type uint8

// The measurement types.
const (
	// TypeCount: each measurement is 0 or 1; the aggregate is their number
	// of ones.
	TypeCount Type = 1
	// TypeSum: each measurement is an integer in [0, 2^Bits); the aggregate
	// is their sum.
	TypeSum Type = 2
	// TypeSumVec: each measurement is a vector of Length integers, each in
	// [0, 2^Bits); the aggregate is their element-wise sum.
	TypeSumVec Type = 3
	// TypeHistogram: each measurement is a bucket index in [0, Length); the
	// aggregate is the count of each bucket.
	TypeHistogram Type = 4
)

// String returns the Prio3 name of t.
func (t Type) String() string {
	switch t {
	case TypeCount:
		return "Prio3Count"
	case TypeSum:
		return "Prio3Sum"
	case TypeSumVec:
		return "Prio3SumVec"
	case TypeHistogram:
		return "Prio3Histogram"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Limits on task parameters; they bound every message of a task.
const (
	// Aggregators is the number of aggregators of every task.
	Aggregators = 2
	// MaxSumBits is the largest Bits of a TypeSum task (circl's Sum
	// requires a maximum measurement below 2^63).
	MaxSumBits = 63
	// MaxVecBits is the largest Bits of a TypeSumVec task.
	MaxVecBits = 64
	// MaxLength bounds Length, and Length*Bits for TypeSumVec.
	MaxLength = 1 << 16
)

// TaskID identifies a task. It is random and public; it is bound into
// every share and message of the task.
type TaskID [32]byte

// VerifyKey is the secret the two aggregators share to verify reports. The
// clients and the collector never see it. It prints as REDACTED.
type VerifyKey [32]byte

// String returns "REDACTED".
func (VerifyKey) String() string { return "REDACTED" }

// LogValue returns "REDACTED".
func (VerifyKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Nonce is the report id: 16 random bytes the client picks for each report.
// It is public, binds the report's shares together, and each aggregator
// refuses a second report with the same nonce.
type Nonce [16]byte

// NewNonce returns a fresh random report nonce.
func NewNonce() Nonce {
	var n Nonce
	_, _ = rand.Read(n[:]) // crypto/rand.Read never fails
	return n
}

// Task describes one measurement: what is measured, with which parameters,
// and the key the aggregators verify reports with. Clients and the
// collector get a copy without VerifyKey ([Task.Public]).
type Task struct {
	ID   TaskID
	Type Type
	// Bits is the bit length of a TypeSum measurement, or of each entry of
	// a TypeSumVec measurement.
	Bits uint
	// Length is the number of buckets of a TypeHistogram, or of entries of
	// a TypeSumVec.
	Length uint
	// VerifyKey is known only to the aggregators.
	VerifyKey VerifyKey
	// Aggregators must be 2.
	Aggregators int
}

// NewTask returns a task of type typ with a random ID and verify key drawn
// from r (crypto/rand.Reader when r is nil). bits is used by TypeSum and
// TypeSumVec, length by TypeHistogram and TypeSumVec; pass 0 otherwise.
func NewTask(r io.Reader, typ Type, bits, length uint) (*Task, error) {
	if r == nil {
		r = rand.Reader
	}
	t := &Task{Type: typ, Bits: bits, Length: length, Aggregators: Aggregators}
	if _, err := io.ReadFull(r, t.ID[:]); err != nil {
		return nil, fmt.Errorf("task id: %w", err)
	}
	if _, err := io.ReadFull(r, t.VerifyKey[:]); err != nil {
		return nil, fmt.Errorf("verify key: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}

// Public returns a copy of t without its verify key, for clients and the
// collector.
func (t *Task) Public() *Task {
	c := *t
	c.VerifyKey = VerifyKey{}
	return &c
}

// Validate reports whether t's parameters are supported, with an error
// wrapping [ErrTask] when not.
func (t *Task) Validate() error {
	if t.Aggregators != Aggregators {
		return fmt.Errorf("%w: %d aggregators, want %d", ErrTask, t.Aggregators, Aggregators)
	}
	switch t.Type {
	case TypeCount:
		if t.Bits != 0 || t.Length != 0 {
			return fmt.Errorf("%w: count takes no bits or length", ErrTask)
		}
	case TypeSum:
		if t.Bits < 1 || t.Bits > MaxSumBits || t.Length != 0 {
			return fmt.Errorf("%w: sum needs 1 ≤ bits ≤ %d and no length", ErrTask, MaxSumBits)
		}
	case TypeHistogram:
		if t.Length < 1 || t.Length > MaxLength || t.Bits != 0 {
			return fmt.Errorf("%w: histogram needs 1 ≤ length ≤ %d and no bits", ErrTask, MaxLength)
		}
	case TypeSumVec:
		if t.Bits < 1 || t.Bits > MaxVecBits || t.Length < 1 || t.Length*t.Bits > MaxLength {
			return fmt.Errorf("%w: sumvec needs 1 ≤ bits ≤ %d and 1 ≤ length·bits ≤ %d", ErrTask, MaxVecBits, MaxLength)
		}
	default:
		return fmt.Errorf("%w: unknown type %d", ErrTask, t.Type)
	}
	return nil
}

// context is the Prio3 application context string: it binds every share,
// proof and joint randomness to the task.
func (t *Task) context() []byte {
	return append([]byte("kura-prio-v1 "), t.ID[:]...)
}

// Measurement is one client's value, typed by the constructor that made it:
// [Count], [Sum], [Bucket] or [Vector].
type Measurement struct {
	typ Type
	v   uint64
	vec []uint64
}

// Count returns a TypeCount measurement.
func Count(b bool) Measurement {
	var v uint64
	if b {
		v = 1
	}
	return Measurement{typ: TypeCount, v: v}
}

// Sum returns a TypeSum measurement.
func Sum(v uint64) Measurement { return Measurement{typ: TypeSum, v: v} }

// Bucket returns a TypeHistogram measurement: one count in bucket i.
func Bucket(i uint64) Measurement { return Measurement{typ: TypeHistogram, v: i} }

// Vector returns a TypeSumVec measurement.
func Vector(v []uint64) Measurement {
	return Measurement{typ: TypeSumVec, vec: append([]uint64(nil), v...)}
}

// Errors. Each error this package returns wraps one of these.
var (
	// ErrTask: unsupported task parameters, or a message or share for
	// another task, type or aggregator.
	ErrTask = errors.New("prio: wrong task")
	// ErrMeasurement: a client's measurement is not valid for the task.
	ErrMeasurement = errors.New("prio: invalid measurement")
	// ErrMalformed: a message or share that does not decode: truncated,
	// too long, trailing bytes, a non-canonical field element.
	ErrMalformed = errors.New("prio: malformed message")
	// ErrReplay: a report nonce this aggregator has already seen.
	ErrReplay = errors.New("prio: replayed report")
	// ErrInvalidReport: preparation rejected the report: its proof does not
	// verify, its joint randomness is inconsistent, or its shares were
	// tampered with. Such a report is not aggregated.
	ErrInvalidReport = errors.New("prio: report rejected by preparation")
	// ErrMismatch: the aggregate shares do not agree (report counts) or
	// preparation messages belong to different reports.
	ErrMismatch = errors.New("prio: mismatched messages")
)
