package psi

// Building blocks for a private set intersection among three or more
// parties: an initiator A, who holds groups of identifiers, and responders
// R1..Rk, each with its own secret exponent, A relaying the messages.
//
// Each party holds a [Blinder] (a secret exponent for the session):
//
//   - A sends X = H(a)^α for each distinct identifier a, grouped, each group
//     shuffled ([Blinder.HashGroups]);
//   - each responder Ri sends its own list Y_i = H(b)^β_i, shuffled
//     ([Blinder.Hash]); the last responder Rk raises its own list by a
//     second secret γ too ([Blinder.Reblind] with a second Blinder);
//   - each responder raises every list it is given by β_i
//     ([Blinder.Reblind]): A's list keeps its groups and is shuffled within
//     each, the others are shuffled whole;
//   - Rk removes γ from its own list once every β has been applied
//     ([Blinder.Unblind]), intersects the fully blinded responder lists
//     ([Intersect]) and returns the intersection T, sorted (its elements are
//     pseudorandom, so their order reveals nothing);
//   - A raises T by α ([Blinder.Reblind]) and counts, per group of the fully
//     blinded X, how many of its elements are in it ([CountIn]).
//
// Exponentiation commutes, so an element of X ends up equal to an element
// of T exactly when its identifier is held by every responder (except with
// negligible probability), whatever the order in which the exponents were
// applied.
//
// The lists travel in [Chain] messages, whose encoding is documented on
// the type.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"

	"github.com/cloudflare/circl/group"
)

// MaxChainParties is the most responders a Chain may carry lists of: their
// tags run from 1 to MaxChainParties.
const MaxChainParties = 16

const (
	typeChain = 3

	// version, type, session id, number of lists
	chainHeaderSize = 2 + len(SessionID{}) + 1
)

// Blinder is one party's secret exponent for one session of a
// multi-party intersection. Its methods may be called any number of times
// and concurrently, but not concurrently with Close.
type Blinder struct {
	session SessionID
	workers int
	key     group.Scalar
}

// NewBlinder returns a Blinder with a fresh secret scalar drawn from
// crypto/rand, hashing identifiers with the session's domain separation
// tag. workers is the number of goroutines hashing and exponentiating; 0
// means runtime.GOMAXPROCS(0).
func NewBlinder(session SessionID, workers int) (*Blinder, error) {
	if session == (SessionID{}) {
		return nil, fmt.Errorf("%w: zero session id", ErrConfig)
	}
	if workers < 0 {
		return nil, fmt.Errorf("%w: negative workers", ErrConfig)
	}
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	return &Blinder{session: session, workers: workers, key: key}, nil
}

// Close zeroises the secret scalar, best effort; the Blinder cannot be used
// afterwards.
func (b *Blinder) Close() {
	zeroise(b.key)
	b.key = nil
}

func (b *Blinder) live() error {
	if b.key == nil {
		return fmt.Errorf("%w: blinder closed", ErrReplay)
	}
	return nil
}

func (b *Blinder) dst() []byte { return Config{Session: b.session}.dst() }

// HashGroups returns the initiator's list: H(a)^k for each identifier a of
// each group, the groups one after the other, each shuffled, and the size
// of each group. Repeated identifiers within a group count once; an
// identifier in two groups, an empty group, no groups or more than
// MaxGroups, and more than MaxElements identifiers in all are refused
// (ErrConfig).
func (b *Blinder) HashGroups(groups [][][]byte) (elements []Element, sizes []int, err error) {
	if err := b.live(); err != nil {
		return nil, nil, err
	}
	if len(groups) == 0 || len(groups) > MaxGroups {
		return nil, nil, fmt.Errorf("%w: %d groups, want 1 to %d", ErrConfig, len(groups), MaxGroups)
	}
	var ids [][]byte
	groupOf := make(map[string]int)
	for g, members := range groups {
		lo := len(ids)
		for _, id := range members {
			if h, ok := groupOf[string(id)]; ok {
				if h != g {
					return nil, nil, fmt.Errorf("%w: an identifier is in groups %d and %d", ErrConfig, h, g)
				}
				continue
			}
			groupOf[string(id)] = g
			ids = append(ids, id)
		}
		part := ids[lo:]
		if len(part) == 0 {
			return nil, nil, fmt.Errorf("%w: group %d is empty", ErrConfig, g)
		}
		if len(ids) > MaxElements {
			return nil, nil, fmt.Errorf("%w: more than %d distinct identifiers", ErrConfig, MaxElements)
		}
		if err := shuffle(len(part), func(i, j int) { part[i], part[j] = part[j], part[i] }); err != nil {
			return nil, nil, err
		}
		sizes = append(sizes, len(part))
	}
	elements = make([]Element, len(ids))
	hashBlind(b.workers, b.dst(), ids, b.key, elements)
	return elements, sizes, nil
}

// Hash returns a responder's own list: H(id)^k for each distinct
// identifier, shuffled. Repeated identifiers count once; more than
// MaxElements distinct identifiers are refused (ErrConfig). No identifiers
// give an empty list.
func (b *Blinder) Hash(ids [][]byte) ([]Element, error) {
	if err := b.live(); err != nil {
		return nil, err
	}
	seen := make(map[string]struct{}, len(ids))
	var distinctIDs [][]byte
	for _, id := range ids {
		if _, dup := seen[string(id)]; dup {
			continue
		}
		seen[string(id)] = struct{}{}
		distinctIDs = append(distinctIDs, id)
	}
	if len(distinctIDs) > MaxElements {
		return nil, fmt.Errorf("%w: %d distinct identifiers, limit %d", ErrConfig, len(distinctIDs), MaxElements)
	}
	if err := shuffle(len(distinctIDs), func(i, j int) {
		distinctIDs[i], distinctIDs[j] = distinctIDs[j], distinctIDs[i]
	}); err != nil {
		return nil, err
	}
	out := make([]Element, len(distinctIDs))
	hashBlind(b.workers, b.dst(), distinctIDs, b.key, out)
	return out, nil
}

// Reblind returns each element of list raised to the secret, shuffled
// within each group of the given sizes: sizes nil (or empty) makes the
// whole list one group; otherwise there may be at most MaxGroups sizes,
// each at least 1, summing to len(list) (ErrMalformed). Every element must
// be a canonical, non-identity encoding (ErrElement) and appear once
// (ErrDuplicate); a list may hold at most MaxElements (ErrTooLarge).
func (b *Blinder) Reblind(list []Element, sizes []int) ([]Element, error) {
	if err := b.live(); err != nil {
		return nil, err
	}
	if len(sizes) != 0 {
		if err := checkGroups(ModeGroups, sizes, len(list)); err != nil {
			return nil, err
		}
	}
	if err := checkList(list, "list"); err != nil {
		return nil, err
	}
	out := make([]Element, len(list))
	if err := exp(b.workers, list, b.key, out); err != nil {
		return nil, err
	}
	if len(sizes) == 0 {
		sizes = []int{len(list)}
	}
	for lo, g := range groupRanges(sizes) {
		part := out[lo : lo+g]
		if err := shuffle(g, func(i, j int) { part[i], part[j] = part[j], part[i] }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Unblind returns each element of list raised to the inverse of the
// secret, in the same order: it undoes Reblind (up to Reblind's shuffle)
// and Hash. Every element must be a canonical, non-identity encoding
// (ErrElement) and appear once (ErrDuplicate); a list may hold at most
// MaxElements (ErrTooLarge).
func (b *Blinder) Unblind(list []Element) ([]Element, error) {
	if err := b.live(); err != nil {
		return nil, err
	}
	if err := checkList(list, "list"); err != nil {
		return nil, err
	}
	inv := group.Ristretto255.NewScalar().Inv(b.key)
	defer zeroise(inv)
	out := make([]Element, len(list))
	if err := exp(b.workers, list, inv, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Intersect returns the elements present in every list, sorted bytewise.
// It refuses no lists (ErrConfig) and a list with a repeated element
// (ErrDuplicate). Elements are compared by their encodings and not
// decoded: lists made by Reblind or Unblind are valid.
func Intersect(lists ...[]Element) ([]Element, error) {
	if len(lists) == 0 {
		return nil, fmt.Errorf("%w: no lists to intersect", ErrConfig)
	}
	for i, list := range lists {
		if err := checkList(list, fmt.Sprintf("list %d", i)); err != nil {
			return nil, err
		}
	}
	// Start from the smallest list: the intersection is no larger.
	smallest := 0
	for i, list := range lists {
		if len(list) < len(lists[smallest]) {
			smallest = i
		}
	}
	in := make(map[Element]bool, len(lists[smallest]))
	for _, e := range lists[smallest] {
		in[e] = true
	}
	for i, list := range lists {
		if i == smallest {
			continue
		}
		next := make(map[Element]bool, len(in))
		for _, e := range list {
			if in[e] {
				next[e] = true
			}
		}
		in = next
	}
	out := make([]Element, 0, len(in))
	for e := range in {
		out = append(out, e)
	}
	slices.SortFunc(out, func(x, y Element) int { return bytes.Compare(x[:], y[:]) })
	return out, nil
}

// CountIn returns, for each group of x (consecutive groups of the given
// sizes: at most MaxGroups, each at least 1, summing to len(x)), how many
// of its elements are in set. It refuses bad sizes (ErrMalformed) and a
// repeated element in x or set (ErrDuplicate). Elements are compared by
// their encodings and not decoded.
func CountIn(x []Element, sizes []int, set []Element) ([]int, error) {
	if err := checkGroups(ModeGroups, sizes, len(x)); err != nil {
		return nil, err
	}
	if err := checkList(x, "grouped list"); err != nil {
		return nil, err
	}
	if err := checkList(set, "set"); err != nil {
		return nil, err
	}
	in := make(map[Element]struct{}, len(set))
	for _, e := range set {
		in[e] = struct{}{}
	}
	counts := make([]int, 0, len(sizes))
	for lo, n := range groupRanges(sizes) {
		c := 0
		for _, e := range x[lo : lo+n] {
			if _, ok := in[e]; ok {
				c++
			}
		}
		counts = append(counts, c)
	}
	return counts, nil
}

// Chain carries lists of a multi-party intersection between the parties.
// It is encoded as
//
//	u8        version = 1
//	u8        type    = 3
//	[32]byte  session id
//	u8        L         (1 ≤ L ≤ MaxChainParties+1)
//	L × list:
//	  u8        tag       (0 ≤ tag ≤ MaxChainParties, each tag at most once)
//	  u32       n         (0 ≤ n ≤ MaxElements)
//	  n × [32]byte  elements
//	  for tag 0 only:
//	  u32       k         (1 ≤ k ≤ MaxGroups)
//	  k × u32   group sizes (each ≥ 1, summing to n)
//
// with integers unsigned big-endian. Tag 0 is the initiator's grouped list;
// tags 1 to MaxChainParties are the responders' lists, or lists derived
// from them such as the intersection. UnmarshalBinary refuses truncation,
// trailing bytes, an unknown version or type, counts out of range, a
// repeated tag, group sizes that do not add up and a repeated element
// within one list. As for [Request] and [Response], whether each element is
// a canonical, non-identity encoding is checked where the element is
// decoded to be used ([Blinder.Reblind], [Blinder.Unblind]), so that each
// element is decoded once. A Chain may be as large as MaxChainParties+1
// lists of MaxElements elements: transports cap the bytes they read at
// what their sessions need.
type Chain struct {
	Session SessionID
	// Lists holds 1 to MaxChainParties+1 lists with distinct tags, in the
	// order they are sent.
	Lists []ChainList
}

// ChainList is one list of a Chain.
type ChainList struct {
	// Tag is 0 for the initiator's grouped list, 1 to MaxChainParties for
	// a responder's list.
	Tag uint8
	// Sizes, for Tag 0 only, splits Elements into consecutive groups of
	// these sizes (1 to MaxGroups of them, each at least 1, summing to
	// len(Elements)); nil for other tags.
	Sizes []int
	// Elements holds at most MaxElements distinct elements; a list of
	// Tag 0 holds at least one.
	Elements []Element
}

// check refuses a Chain that UnmarshalBinary would refuse, except for
// element validity.
func (c *Chain) check() error {
	if len(c.Lists) == 0 || len(c.Lists) > MaxChainParties+1 {
		return fmt.Errorf("%w: %d lists, want 1 to %d", ErrMalformed, len(c.Lists), MaxChainParties+1)
	}
	var seen [MaxChainParties + 1]bool
	for _, l := range c.Lists {
		if l.Tag > MaxChainParties {
			return fmt.Errorf("%w: list tag %d above %d", ErrMalformed, l.Tag, MaxChainParties)
		}
		if seen[l.Tag] {
			return fmt.Errorf("%w: list tag %d repeats", ErrMalformed, l.Tag)
		}
		seen[l.Tag] = true
		what := fmt.Sprintf("list %d", l.Tag)
		if l.Tag != 0 && l.Sizes != nil {
			return fmt.Errorf("%w: group sizes in %s", ErrMalformed, what)
		}
		if l.Tag == 0 {
			if err := checkGroups(ModeGroups, l.Sizes, len(l.Elements)); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		if err := checkList(l.Elements, what); err != nil {
			return err
		}
	}
	return nil
}

// MarshalBinary encodes c as described on Chain. It refuses
// a Chain that UnmarshalBinary would refuse, except for element validity,
// which it does not check.
func (c *Chain) MarshalBinary() ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	size := chainHeaderSize
	for _, l := range c.Lists {
		size += 1 + 4 + len(l.Elements)*ElementSize
		if l.Tag == 0 {
			size += 4 + 4*len(l.Sizes)
		}
	}
	b := make([]byte, 0, size)
	b = append(b, Version, typeChain)
	b = append(b, c.Session[:]...)
	b = append(b, byte(len(c.Lists)))
	for _, l := range c.Lists {
		b = append(b, l.Tag)
		b = binary.BigEndian.AppendUint32(b, uint32(len(l.Elements)))
		for i := range l.Elements {
			b = append(b, l.Elements[i][:]...)
		}
		if l.Tag == 0 {
			b = binary.BigEndian.AppendUint32(b, uint32(len(l.Sizes)))
			for _, g := range l.Sizes {
				b = binary.BigEndian.AppendUint32(b, uint32(g))
			}
		}
	}
	return b, nil
}

// UnmarshalBinary decodes a Chain, refusing anything but the exact
// encoding MarshalBinary produces: unknown version or type, no lists or
// more than MaxChainParties+1, a tag above MaxChainParties or repeated, a
// count above MaxElements (ErrTooLarge), a length that disagrees with the
// counts, group sizes that do not add up, a repeated element within a list
// (ErrDuplicate). Element validity is checked by Blinder.Reblind and
// Blinder.Unblind, which decode every element.
func (c *Chain) UnmarshalBinary(data []byte) error {
	if len(data) < chainHeaderSize {
		return fmt.Errorf("%w: %d-byte message", ErrMalformed, len(data))
	}
	if data[0] != Version {
		return fmt.Errorf("%w: %d", ErrVersion, data[0])
	}
	if data[1] != typeChain {
		return fmt.Errorf("%w: message type %d, want %d", ErrMalformed, data[1], typeChain)
	}
	var out Chain
	copy(out.Session[:], data[2:])
	nLists := int(data[chainHeaderSize-1])
	if nLists == 0 || nLists > MaxChainParties+1 {
		return fmt.Errorf("%w: %d lists, want 1 to %d", ErrMalformed, nLists, MaxChainParties+1)
	}
	rest := data[chainHeaderSize:]
	out.Lists = make([]ChainList, nLists)
	for i := range out.Lists {
		l := &out.Lists[i]
		if len(rest) < 1 {
			return fmt.Errorf("%w: truncated list tag", ErrMalformed)
		}
		l.Tag, rest = rest[0], rest[1:]
		if l.Tag > MaxChainParties {
			return fmt.Errorf("%w: list tag %d above %d", ErrMalformed, l.Tag, MaxChainParties)
		}
		n, r, err := readCount(rest, fmt.Sprintf("list %d elements", l.Tag))
		if err != nil {
			return err
		}
		rest = r
		if len(rest) < n*ElementSize {
			return fmt.Errorf("%w: %d bytes for %d elements", ErrMalformed, len(rest), n)
		}
		l.Elements = make([]Element, n)
		for j := range l.Elements {
			copy(l.Elements[j][:], rest[j*ElementSize:])
		}
		rest = rest[n*ElementSize:]
		if l.Tag != 0 {
			continue
		}
		if len(rest) < 4 {
			return fmt.Errorf("%w: truncated group count", ErrMalformed)
		}
		k := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if k == 0 || k > MaxGroups || len(rest) < int(k)*4 {
			return fmt.Errorf("%w: %d bytes for %d group sizes", ErrMalformed, len(rest), k)
		}
		l.Sizes = make([]int, k)
		for j := range l.Sizes {
			l.Sizes[j] = int(binary.BigEndian.Uint32(rest[4*j:]))
		}
		rest = rest[4*k:]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	if err := out.check(); err != nil {
		return err
	}
	*c = out
	return nil
}

// List returns the list with the given tag, or nil and false.
func (c *Chain) List(tag uint8) (*ChainList, bool) {
	for i := range c.Lists {
		if c.Lists[i].Tag == tag {
			return &c.Lists[i], true
		}
	}
	return nil, false
}
