package psi

import (
	"encoding/binary"
	"fmt"
)

const (
	typeRequest  = 1
	typeResponse = 2

	// version, type, mode, session id
	commonHeaderSize   = 3 + len(SessionID{})
	requestHeaderSize  = commonHeaderSize + 4
	responseHeaderSize = commonHeaderSize + 4
)

// Request is round 1, from A to B: H(a)^α for each distinct identifier of
// A, shuffled.
type Request struct {
	Session  SessionID
	Mode     Mode
	Elements []Element
	// Groups, in ModeGroups only, splits Elements into consecutive groups
	// of these sizes (each at least 1, summing to len(Elements)).
	Groups []int
}

// Response is round 2, from B to A.
type Response struct {
	Session SessionID
	Mode    Mode
	// Reblinded holds (H(a)^α)^β for each Request element: in the
	// request's order in ModeRows, shuffled in ModeCardinality, shuffled
	// within each group in ModeGroups.
	Reblinded []Element
	// Elements holds H(b)^β for each distinct identifier of B, shuffled.
	Elements []Element
	// PayloadSize and Payloads, in ModeGroups only, carry an opaque
	// payload of PayloadSize bytes per Elements entry, in the same order:
	// Payloads[i*PayloadSize:(i+1)*PayloadSize] belongs to Elements[i]
	// (kura's agents put encrypted values there). PayloadSize is 0 when
	// there are none.
	PayloadSize int
	Payloads    []byte
}

// MaxPayloadSize bounds the payload of one response element.
const MaxPayloadSize = 1024

func appendHeader(b []byte, typ byte, mode Mode, sid SessionID) []byte {
	b = append(b, Version, typ, byte(mode))
	return append(b, sid[:]...)
}

func parseHeader(data []byte, typ byte) (Mode, SessionID, []byte, error) {
	if len(data) < commonHeaderSize {
		return 0, SessionID{}, nil, fmt.Errorf("%w: %d-byte message", ErrMalformed, len(data))
	}
	if data[0] != Version {
		return 0, SessionID{}, nil, fmt.Errorf("%w: %d", ErrVersion, data[0])
	}
	if data[1] != typ {
		return 0, SessionID{}, nil, fmt.Errorf("%w: message type %d, want %d", ErrMalformed, data[1], typ)
	}
	mode := Mode(data[2])
	if !mode.valid() {
		return 0, SessionID{}, nil, fmt.Errorf("%w: unknown mode %d", ErrMalformed, data[2])
	}
	var sid SessionID
	copy(sid[:], data[3:commonHeaderSize])
	return mode, sid, data[commonHeaderSize:], nil
}

// readCount reads a u32 element count bounded by MaxElements.
func readCount(data []byte, what string) (int, []byte, error) {
	if len(data) < 4 {
		return 0, nil, fmt.Errorf("%w: truncated %s count", ErrMalformed, what)
	}
	n := binary.BigEndian.Uint32(data)
	if n > MaxElements {
		return 0, nil, fmt.Errorf("%w: %d %s", ErrTooLarge, n, what)
	}
	return int(n), data[4:], nil
}

func checkList(list []Element, what string) error {
	if len(list) > MaxElements {
		return fmt.Errorf("%w: %d %s", ErrTooLarge, len(list), what)
	}
	if err := distinct(list); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// MarshalBinary encodes r as described in the package documentation. It
// refuses a Request that UnmarshalBinary would refuse, except for element
// validity, which it does not check.
func (r *Request) MarshalBinary() ([]byte, error) {
	if !r.Mode.valid() {
		return nil, fmt.Errorf("%w: unknown mode %d", ErrMalformed, r.Mode)
	}
	if len(r.Elements) == 0 {
		return nil, fmt.Errorf("%w: empty request", ErrMalformed)
	}
	if err := checkList(r.Elements, "request elements"); err != nil {
		return nil, err
	}
	if err := checkGroups(r.Mode, r.Groups, len(r.Elements)); err != nil {
		return nil, err
	}
	b := make([]byte, 0, requestHeaderSize+len(r.Elements)*ElementSize+4+4*len(r.Groups))
	b = appendHeader(b, typeRequest, r.Mode, r.Session)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Elements)))
	for i := range r.Elements {
		b = append(b, r.Elements[i][:]...)
	}
	if r.Mode == ModeGroups {
		b = binary.BigEndian.AppendUint32(b, uint32(len(r.Groups)))
		for _, g := range r.Groups {
			b = binary.BigEndian.AppendUint32(b, uint32(g))
		}
	}
	return b, nil
}

// checkGroups checks a request's group sizes against its mode and its
// number of elements.
func checkGroups(mode Mode, groups []int, n int) error {
	if mode != ModeGroups {
		if groups != nil {
			return fmt.Errorf("%w: groups in a %v request", ErrMalformed, mode)
		}
		return nil
	}
	if len(groups) == 0 || len(groups) > MaxGroups {
		return fmt.Errorf("%w: %d groups, want 1 to %d", ErrMalformed, len(groups), MaxGroups)
	}
	total := 0
	for i, g := range groups {
		if g < 1 || g > n {
			return fmt.Errorf("%w: group %d has %d elements", ErrMalformed, i, g)
		}
		total += g
	}
	if total != n {
		return fmt.Errorf("%w: groups of %d elements in all for %d elements", ErrMalformed, total, n)
	}
	return nil
}

// UnmarshalBinary decodes a Request, refusing anything but the exact
// encoding MarshalBinary produces: unknown version or mode, a count of zero
// or above MaxElements, a length that disagrees with the count, group sizes
// that do not add up, repeated elements. Whether each element is a
// canonical, non-identity encoding is checked by Receiver.Respond, which
// decodes it.
func (r *Request) UnmarshalBinary(data []byte) error {
	mode, sid, rest, err := parseHeader(data, typeRequest)
	if err != nil {
		return err
	}
	n, rest, err := readCount(rest, "request elements")
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: empty request", ErrMalformed)
	}
	if len(rest) < n*ElementSize {
		return fmt.Errorf("%w: %d bytes for %d elements", ErrMalformed, len(rest), n)
	}
	elems := make([]Element, n)
	for i := range elems {
		copy(elems[i][:], rest[i*ElementSize:])
	}
	rest = rest[n*ElementSize:]
	var groups []int
	if mode == ModeGroups {
		if len(rest) < 4 {
			return fmt.Errorf("%w: truncated group count", ErrMalformed)
		}
		k := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if k == 0 || k > MaxGroups || len(rest) != int(k)*4 {
			return fmt.Errorf("%w: %d bytes for %d group sizes", ErrMalformed, len(rest), k)
		}
		groups = make([]int, k)
		for i := range groups {
			groups[i] = int(binary.BigEndian.Uint32(rest[4*i:]))
		}
		rest = nil
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	if err := checkGroups(mode, groups, n); err != nil {
		return err
	}
	if err := checkList(elems, "request elements"); err != nil {
		return err
	}
	*r = Request{Session: sid, Mode: mode, Elements: elems, Groups: groups}
	return nil
}

func (r *Response) check() error {
	if !r.Mode.valid() {
		return fmt.Errorf("%w: unknown mode %d", ErrMalformed, r.Mode)
	}
	if len(r.Reblinded) == 0 {
		return fmt.Errorf("%w: empty response", ErrMalformed)
	}
	if err := checkList(r.Reblinded, "reblinded elements"); err != nil {
		return err
	}
	if r.PayloadSize < 0 || r.PayloadSize > MaxPayloadSize || len(r.Payloads) != r.PayloadSize*len(r.Elements) {
		return fmt.Errorf("%w: %d payload bytes of %d each for %d elements", ErrMalformed, len(r.Payloads), r.PayloadSize, len(r.Elements))
	}
	if r.PayloadSize > 0 && r.Mode != ModeGroups {
		return fmt.Errorf("%w: payloads in a %v response", ErrMalformed, r.Mode)
	}
	return checkList(r.Elements, "response elements")
}

// MarshalBinary encodes r as described in the package documentation. It
// refuses a Response that UnmarshalBinary would refuse, except for element
// validity, which it does not check.
func (r *Response) MarshalBinary() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	size := responseHeaderSize + len(r.Reblinded)*ElementSize + 4 + len(r.Elements)*ElementSize + 2 + len(r.Payloads)
	b := make([]byte, 0, size)
	b = appendHeader(b, typeResponse, r.Mode, r.Session)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Reblinded)))
	for i := range r.Reblinded {
		b = append(b, r.Reblinded[i][:]...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Elements)))
	for i := range r.Elements {
		b = append(b, r.Elements[i][:]...)
	}
	if r.Mode == ModeGroups {
		b = binary.BigEndian.AppendUint16(b, uint16(r.PayloadSize))
		b = append(b, r.Payloads...)
	}
	return b, nil
}

// UnmarshalBinary decodes a Response, refusing anything but the exact
// encoding MarshalBinary produces: unknown version or mode, a first count
// of zero, counts above MaxElements, a length that disagrees with the
// counts, repeated elements within a list. Element validity is checked by
// Sender.Finish, which decodes every element.
func (r *Response) UnmarshalBinary(data []byte) error {
	mode, sid, rest, err := parseHeader(data, typeResponse)
	if err != nil {
		return err
	}
	n, rest, err := readCount(rest, "reblinded elements")
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%w: empty response", ErrMalformed)
	}
	if len(rest) < n*ElementSize {
		return fmt.Errorf("%w: truncated reblinded elements", ErrMalformed)
	}
	reblinded := make([]Element, n)
	for i := range reblinded {
		copy(reblinded[i][:], rest[i*ElementSize:])
	}
	rest = rest[n*ElementSize:]
	m, rest, err := readCount(rest, "response elements")
	if err != nil {
		return err
	}
	if len(rest) < m*ElementSize {
		return fmt.Errorf("%w: %d bytes for %d elements", ErrMalformed, len(rest), m)
	}
	out := Response{Session: sid, Mode: mode, Reblinded: reblinded, Elements: make([]Element, m)}
	for i := range out.Elements {
		copy(out.Elements[i][:], rest[i*ElementSize:])
	}
	rest = rest[m*ElementSize:]
	if mode == ModeGroups {
		if len(rest) < 2 {
			return fmt.Errorf("%w: truncated payload size", ErrMalformed)
		}
		out.PayloadSize, rest = int(binary.BigEndian.Uint16(rest)), rest[2:]
		if out.PayloadSize > MaxPayloadSize || len(rest) != out.PayloadSize*m {
			return fmt.Errorf("%w: %d payload bytes for %d elements of %d", ErrMalformed, len(rest), m, out.PayloadSize)
		}
		out.Payloads, rest = rest, nil
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	if err := out.check(); err != nil {
		return err
	}
	*r = out
	return nil
}
