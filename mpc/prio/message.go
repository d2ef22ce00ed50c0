package prio

import (
	"encoding/binary"
	"fmt"
)

// Version is the version byte that opens every message.
const Version = 1

// MaxShareSize bounds every variable-length field of every message. The
// task's own, exact lengths are checked again when a share is used.
const MaxShareSize = 1 << 22

const (
	kindReportShare    = 1
	kindPrepShare      = 2
	kindPrepMessage    = 3
	kindAggregateShare = 4

	headerSize = 2 + len(TaskID{})
)

// ReportShare is what one aggregator receives of one report: the public
// share and its own input share.
type ReportShare struct {
	Task       TaskID
	Nonce      Nonce
	Aggregator uint8
	Public     []byte // circl's encoding of the Prio3 public share
	Input      []byte // circl's encoding of this aggregator's input share
}

// PrepShare is one aggregator's preparation share of one report, sent to
// the aggregator that combines them.
type PrepShare struct {
	Task       TaskID
	Nonce      Nonce
	Aggregator uint8
	Share      []byte // circl's encoding of the Prio3 prep share
}

// PrepMessage is the combined preparation message of one report, sent to
// both aggregators once the proof has verified.
type PrepMessage struct {
	Task    TaskID
	Nonce   Nonce
	Message []byte // circl's encoding of the Prio3 prep message
}

// AggregateShare is one aggregator's share of the aggregate of Reports
// reports, sent to the collector.
type AggregateShare struct {
	Task       TaskID
	Aggregator uint8
	Reports    uint64
	Share      []byte // circl's encoding of the Prio3 aggregate share
}

// writer and reader implement the shared framing: all integers big-endian,
// variable fields as u32 length || bytes.
type writer []byte

func (w *writer) header(kind byte, task TaskID) {
	*w = append(*w, Version, kind)
	*w = append(*w, task[:]...)
}
func (w *writer) u8(v uint8)   { *w = append(*w, v) }
func (w *writer) u64(v uint64) { *w = binary.BigEndian.AppendUint64(*w, v) }
func (w *writer) raw(b []byte) { *w = append(*w, b...) }
func (w *writer) field(b []byte) {
	*w = binary.BigEndian.AppendUint32(*w, uint32(len(b)))
	*w = append(*w, b...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail("truncated %s", what)
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) header(kind byte) (task TaskID) {
	h := r.take(headerSize, "header")
	if r.err != nil {
		return task
	}
	if h[0] != Version {
		r.fail("version %d", h[0])
		return task
	}
	if h[1] != kind {
		r.fail("message kind %d, want %d", h[1], kind)
		return task
	}
	copy(task[:], h[2:])
	return task
}

func (r *reader) u8(what string) uint8 {
	b := r.take(1, what)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u64(what string) uint64 {
	b := r.take(8, what)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) nonce() (n Nonce) {
	copy(n[:], r.take(len(n), "nonce"))
	return n
}

func (r *reader) aggregator() uint8 {
	id := r.u8("aggregator")
	if r.err == nil && id >= Aggregators {
		r.fail("aggregator %d", id)
	}
	return id
}

func (r *reader) field(what string) []byte {
	b := r.take(4, what+" length")
	if b == nil {
		return nil
	}
	n := binary.BigEndian.Uint32(b)
	if n > MaxShareSize {
		r.fail("%s of %d bytes exceeds %d", what, n, MaxShareSize)
		return nil
	}
	return append([]byte(nil), r.take(int(n), what)...)
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

func checkField(b []byte, what string) error {
	if len(b) > MaxShareSize {
		return fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrMalformed, what, len(b), MaxShareSize)
	}
	return nil
}

// MarshalBinary encodes s as
//
//	u8 version=1 | u8 kind=1 | [32]byte task | [16]byte nonce | u8 aggregator |
//	u32 n | n bytes public share | u32 m | m bytes input share
func (s *ReportShare) MarshalBinary() ([]byte, error) {
	if err := checkField(s.Public, "public share"); err != nil {
		return nil, err
	}
	if err := checkField(s.Input, "input share"); err != nil {
		return nil, err
	}
	w := make(writer, 0, headerSize+len(s.Nonce)+9+len(s.Public)+len(s.Input))
	w.header(kindReportShare, s.Task)
	w.raw(s.Nonce[:])
	w.u8(s.Aggregator)
	w.field(s.Public)
	w.field(s.Input)
	return w, nil
}

// UnmarshalBinary decodes a ReportShare, refusing anything but exactly one
// well-framed message.
func (s *ReportShare) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	var v ReportShare
	v.Task = r.header(kindReportShare)
	v.Nonce = r.nonce()
	v.Aggregator = r.aggregator()
	v.Public = r.field("public share")
	v.Input = r.field("input share")
	if err := r.done(); err != nil {
		return fmt.Errorf("report share: %w", err)
	}
	*s = v
	return nil
}

// MarshalBinary encodes s as
//
//	u8 version=1 | u8 kind=2 | [32]byte task | [16]byte nonce | u8 aggregator |
//	u32 n | n bytes prep share
func (s *PrepShare) MarshalBinary() ([]byte, error) {
	if err := checkField(s.Share, "prep share"); err != nil {
		return nil, err
	}
	w := make(writer, 0, headerSize+len(s.Nonce)+5+len(s.Share))
	w.header(kindPrepShare, s.Task)
	w.raw(s.Nonce[:])
	w.u8(s.Aggregator)
	w.field(s.Share)
	return w, nil
}

// UnmarshalBinary decodes a PrepShare, refusing anything but exactly one
// well-framed message.
func (s *PrepShare) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	var v PrepShare
	v.Task = r.header(kindPrepShare)
	v.Nonce = r.nonce()
	v.Aggregator = r.aggregator()
	v.Share = r.field("prep share")
	if err := r.done(); err != nil {
		return fmt.Errorf("prep share: %w", err)
	}
	*s = v
	return nil
}

// MarshalBinary encodes m as
//
//	u8 version=1 | u8 kind=3 | [32]byte task | [16]byte nonce |
//	u32 n | n bytes prep message
func (m *PrepMessage) MarshalBinary() ([]byte, error) {
	if err := checkField(m.Message, "prep message"); err != nil {
		return nil, err
	}
	w := make(writer, 0, headerSize+len(m.Nonce)+4+len(m.Message))
	w.header(kindPrepMessage, m.Task)
	w.raw(m.Nonce[:])
	w.field(m.Message)
	return w, nil
}

// UnmarshalBinary decodes a PrepMessage, refusing anything but exactly one
// well-framed message.
func (m *PrepMessage) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	var v PrepMessage
	v.Task = r.header(kindPrepMessage)
	v.Nonce = r.nonce()
	v.Message = r.field("prep message")
	if err := r.done(); err != nil {
		return fmt.Errorf("prep message: %w", err)
	}
	*m = v
	return nil
}

// MarshalBinary encodes s as
//
//	u8 version=1 | u8 kind=4 | [32]byte task | u8 aggregator | u64 reports |
//	u32 n | n bytes aggregate share
func (s *AggregateShare) MarshalBinary() ([]byte, error) {
	if err := checkField(s.Share, "aggregate share"); err != nil {
		return nil, err
	}
	w := make(writer, 0, headerSize+13+len(s.Share))
	w.header(kindAggregateShare, s.Task)
	w.u8(s.Aggregator)
	w.u64(s.Reports)
	w.field(s.Share)
	return w, nil
}

// UnmarshalBinary decodes an AggregateShare, refusing anything but exactly
// one well-framed message.
func (s *AggregateShare) UnmarshalBinary(b []byte) error {
	r := reader{b: b}
	var v AggregateShare
	v.Task = r.header(kindAggregateShare)
	v.Aggregator = r.aggregator()
	v.Reports = r.u64("report count")
	v.Share = r.field("aggregate share")
	if err := r.done(); err != nil {
		return fmt.Errorf("aggregate share: %w", err)
	}
	*s = v
	return nil
}
