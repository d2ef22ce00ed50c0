package psi

import (
	"bytes"
	"encoding/binary"
	"errors"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/cloudflare/circl/group"
)

func newBlinder(t testing.TB, sid SessionID) *Blinder {
	t.Helper()
	b, err := NewBlinder(sid, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// wire sends c through its encoding, recording the bytes in sent.
func wire(t testing.TB, sent *[][]byte, c Chain) Chain {
	t.Helper()
	data, err := c.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Chain
	if err := got.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if sent != nil {
		*sent = append(*sent, data)
	}
	return got
}

// list returns c's list with tag, failing the test if there is none.
func list(t testing.TB, c Chain, tag uint8) ChainList {
	t.Helper()
	l, ok := c.List(tag)
	if !ok {
		t.Fatalf("no list %d", tag)
	}
	return *l
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// chainInputs returns A's groups (with repeats within groups) and three
// responders' identifiers (with repeats) drawn from a universe of phone
// numbers.
func chainInputs(seed uint64, universe, nGroups int) (groups [][][]byte, responders [3][][]byte) {
	rnd := mrand.New(mrand.NewPCG(seed, 1))
	groups = make([][][]byte, nGroups)
	for i := range universe {
		if rnd.IntN(10) < 7 {
			g := rnd.IntN(nGroups)
			groups[g] = append(groups[g], phone(i))
			if rnd.IntN(20) == 0 {
				groups[g] = append(groups[g], phone(i))
			}
		}
		for r := range responders {
			if rnd.IntN(10) < 8 {
				responders[r] = append(responders[r], phone(i))
				if rnd.IntN(20) == 0 {
					responders[r] = append(responders[r], phone(i))
				}
			}
		}
	}
	for g := range groups { // no group empty
		groups[g] = append(groups[g], phone(universe+g))
	}
	return groups, responders
}

// plainCounts returns |A_g ∩ R1 ∩ R2 ∩ R3| for each group.
func plainCounts(groups [][][]byte, responders [3][][]byte) []int {
	count := map[string]int{}
	for _, ids := range responders {
		seen := map[string]bool{}
		for _, id := range ids {
			if !seen[string(id)] {
				seen[string(id)] = true
				count[string(id)]++
			}
		}
	}
	out := make([]int, len(groups))
	for g, ids := range groups {
		seen := map[string]bool{}
		for _, id := range ids {
			if !seen[string(id)] && count[string(id)] == len(responders) {
				out[g]++
			}
			seen[string(id)] = true
		}
	}
	return out
}

// chainRun is the multi-party protocol among A and three responders, A
// relaying every message, each sent through its encoding. It returns A's
// per-group counts and every message sent.
func chainRun(t testing.TB, sid SessionID, groups [][][]byte, responders [3][][]byte) ([]int, [][]byte) {
	t.Helper()
	var sent [][]byte
	a := newBlinder(t, sid)
	b1, b2, b3 := newBlinder(t, sid), newBlinder(t, sid), newBlinder(t, sid)
	gamma := newBlinder(t, sid)
	reblind := func(b *Blinder, l ChainList) ChainList {
		t.Helper()
		return ChainList{Tag: l.Tag, Sizes: l.Sizes, Elements: must[[]Element](t)(b.Reblind(l.Elements, l.Sizes))}
	}

	// A → R1: X.
	x, sizes, err := a.HashGroups(groups)
	if err != nil {
		t.Fatal(err)
	}
	m := wire(t, &sent, Chain{Session: sid, Lists: []ChainList{{Tag: 0, Sizes: sizes, Elements: x}}})

	// R1 → R2: X^β1, Y1.
	y1 := must[[]Element](t)(b1.Hash(responders[0]))
	m = wire(t, &sent, Chain{Session: sid, Lists: []ChainList{reblind(b1, list(t, m, 0)), {Tag: 1, Elements: y1}}})

	// R2 → R3: X^β1β2, Y1^β2, Y2.
	y2 := must[[]Element](t)(b2.Hash(responders[1]))
	m = wire(t, &sent, Chain{Session: sid, Lists: []ChainList{reblind(b2, list(t, m, 0)), reblind(b2, list(t, m, 1)), {Tag: 2, Elements: y2}}})

	// R3 keeps Y1^β2β3, returns X fully blinded to A and sends Y2^β2β3
	// and Y3^β3γ round R1 (both) and R2 (Y3 only).
	y1full := reblind(b3, list(t, m, 1)).Elements
	xfull := wire(t, &sent, Chain{Session: sid, Lists: []ChainList{reblind(b3, list(t, m, 0))}})
	y3 := must[[]Element](t)(gamma.Reblind(must[[]Element](t)(b3.Hash(responders[2])), nil))
	m = wire(t, &sent, Chain{Session: sid, Lists: []ChainList{reblind(b3, list(t, m, 2)), {Tag: 3, Elements: y3}}})
	m = wire(t, &sent, Chain{Session: sid, Lists: []ChainList{reblind(b1, list(t, m, 2)), reblind(b1, list(t, m, 3))}})
	m = wire(t, &sent, Chain{Session: sid, Lists: []ChainList{list(t, m, 2), reblind(b2, list(t, m, 3))}})

	// R3 removes γ, intersects and returns T to A.
	y2full := list(t, m, 2).Elements
	y3full := must[[]Element](t)(gamma.Unblind(list(t, m, 3).Elements))
	tset, err := Intersect(y1full, y2full, y3full)
	if err != nil {
		t.Fatal(err)
	}
	m = wire(t, &sent, Chain{Session: sid, Lists: []ChainList{{Tag: 3, Elements: tset}}})

	// A counts.
	ta := must[[]Element](t)(a.Reblind(list(t, m, 3).Elements, nil))
	xl := list(t, xfull, 0)
	if !slices.Equal(xl.Sizes, sizes) {
		t.Fatalf("group sizes came back as %v, sent %v", xl.Sizes, sizes)
	}
	counts, err := CountIn(xl.Elements, xl.Sizes, ta)
	if err != nil {
		t.Fatal(err)
	}
	return counts, sent
}

func TestChain(t *testing.T) {
	groups, responders := chainInputs(1, 3000, 9)
	sid := testSession(t)
	got, sent := chainRun(t, sid, groups, responders)
	want := plainCounts(groups, responders)
	if !slices.Equal(got, want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	total := 0
	for _, n := range want {
		total += n
	}
	if total < 500 {
		t.Fatalf("only %d identifiers in the intersection: the test checks too little", total)
	}
	// No message carries an identifier in the clear.
	for i, msg := range sent {
		for _, id := range [][]byte{phone(0), phone(1), phone(2999)} {
			if bytes.Contains(msg, id) {
				t.Fatalf("message %d contains identifier %s", i, id)
			}
		}
	}
}

func TestChainSmall(t *testing.T) {
	// One group; a responder holding nothing empties the intersection.
	sid := testSession(t)
	groups := [][][]byte{{phone(1), phone(2)}}
	got, _ := chainRun(t, sid, groups, [3][][]byte{{phone(1), phone(2)}, {phone(2)}, {phone(2), phone(3)}})
	if !slices.Equal(got, []int{1}) {
		t.Errorf("counts %v, want [1]", got)
	}
	got, _ = chainRun(t, sid, groups, [3][][]byte{{phone(1)}, nil, {phone(1)}})
	if !slices.Equal(got, []int{0}) {
		t.Errorf("counts %v, want [0]", got)
	}
}

// sortedGroups returns each group of list sorted.
func sortedGroups(list []Element, sizes []int) [][]Element {
	var out [][]Element
	for lo, n := range groupRanges(sizes) {
		g := slices.Clone(list[lo : lo+n])
		slices.SortFunc(g, func(x, y Element) int { return bytes.Compare(x[:], y[:]) })
		out = append(out, g)
	}
	return out
}

func TestReblindOrder(t *testing.T) {
	sid := testSession(t)
	a := newBlinder(t, sid)
	bs := []*Blinder{newBlinder(t, sid), newBlinder(t, sid), newBlinder(t, sid)}
	groups, responders := chainInputs(2, 400, 4)
	x, sizes, err := a.HashGroups(groups)
	if err != nil {
		t.Fatal(err)
	}
	y := must[[]Element](t)(bs[0].Hash(responders[0]))
	var wantX [][]Element
	var wantY []Element
	for _, order := range [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}} {
		gotX, gotY := x, y
		for _, i := range order {
			gotX = must[[]Element](t)(bs[i].Reblind(gotX, sizes))
			gotY = must[[]Element](t)(bs[i].Reblind(gotY, nil))
		}
		gx := sortedGroups(gotX, sizes)
		gy := must[[]Element](t)(Intersect(gotY))
		if wantX == nil {
			wantX, wantY = gx, gy
			continue
		}
		for g := range gx {
			if !slices.Equal(gx[g], wantX[g]) {
				t.Fatalf("order %v: group %d differs", order, g)
			}
		}
		if !slices.Equal(gy, wantY) {
			t.Fatalf("order %v: responder list differs", order)
		}
	}
}

func TestHashGroups(t *testing.T) {
	sid := testSession(t)
	a := newBlinder(t, sid)
	groups := [][][]byte{
		{phone(1), phone(2), phone(1), phone(3)},
		{phone(4)},
		{phone(5), phone(5), phone(6)},
	}
	x, sizes, err := a.HashGroups(groups)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sizes, []int{3, 1, 2}) {
		t.Fatalf("sizes %v, want [3 1 2]", sizes)
	}
	// Each group holds its own identifiers' elements, whatever the order.
	for g, want := range [][][]byte{{phone(1), phone(2), phone(3)}, {phone(4)}, {phone(5), phone(6)}} {
		h := must[[]Element](t)(a.Hash(want))
		if !slices.Equal(sortedGroups(x, sizes)[g], sortedGroups(h, []int{len(h)})[0]) {
			t.Errorf("group %d holds other elements", g)
		}
	}
	// Another session hashes to other elements.
	other := newBlinder(t, testSession(t))
	if y := must[[]Element](t)(other.Hash([][]byte{phone(4)})); y[0] == x[3] {
		t.Error("same element in two sessions")
	}
}

func TestUnblind(t *testing.T) {
	sid := testSession(t)
	b, c := newBlinder(t, sid), newBlinder(t, sid)
	x := must[[]Element](t)(c.Hash(phones(700)))
	r := must[[]Element](t)(b.Reblind(x, nil))
	u := must[[]Element](t)(b.Unblind(r))
	if !slices.Equal(must[[]Element](t)(Intersect(u)), must[[]Element](t)(Intersect(x))) {
		t.Fatal("Unblind(Reblind(x)) differs from x")
	}
	// Unblind keeps the order.
	for _, i := range []int{0, 1, 350, 699} {
		if got := must[[]Element](t)(b.Reblind(u[i:i+1], nil)); got[0] != r[i] {
			t.Fatalf("Unblind moved element %d", i)
		}
	}
	// Unblind also undoes Hash.
	h := must[[]Element](t)(b.Hash([][]byte{phone(7)}))
	if got := must[[]Element](t)(b.Unblind(h)); got[0] != hashOnly(sid, phone(7)) {
		t.Error("Unblind(Hash(id)) is not H(id)")
	}
}

// hashOnly returns H(id) for the session, computed by circl.
func hashOnly(sid SessionID, id []byte) Element {
	var e Element
	encode(group.Ristretto255.HashToElement(id, Config{Session: sid}.dst()), &e)
	return e
}

// phones returns n distinct identifiers.
func phones(n int) [][]byte {
	ids := make([][]byte, n)
	for i := range ids {
		ids[i] = phone(i)
	}
	return ids
}

func TestIntersectCountIn(t *testing.T) {
	e := make([]Element, 6)
	for i := range e {
		e[i] = randomElement()
	}
	got := must[[]Element](t)(Intersect([]Element{e[0], e[1], e[2], e[3]}, []Element{e[3], e[1], e[4]}, []Element{e[5], e[1], e[3]}))
	want := []Element{e[1], e[3]}
	slices.SortFunc(want, func(x, y Element) int { return bytes.Compare(x[:], y[:]) })
	if !slices.Equal(got, want) {
		t.Fatalf("Intersect = %x, want %x", got, want)
	}
	if got := must[[]Element](t)(Intersect([]Element{e[0]}, nil)); len(got) != 0 {
		t.Fatalf("Intersect with an empty list = %x", got)
	}
	counts := must[[]int](t)(CountIn(e, []int{2, 3, 1}, []Element{e[1], e[2], e[4], randomElement()}))
	if !slices.Equal(counts, []int{1, 2, 0}) {
		t.Fatalf("CountIn = %v, want [1 2 0]", counts)
	}
}

func TestChainRefuses(t *testing.T) {
	sid := testSession(t)
	b := newBlinder(t, sid)
	good := must[[]Element](t)(b.Hash(phones(5)))
	dup := append(slices.Clone(good), good[2])
	groupErr := func(groups [][][]byte) error { _, _, err := b.HashGroups(groups); return err }
	reblindErr := func(list []Element, sizes []int) error { _, err := b.Reblind(list, sizes); return err }
	unblindErr := func(list []Element) error { _, err := b.Unblind(list); return err }
	intersectErr := func(lists ...[]Element) error { _, err := Intersect(lists...); return err }
	countErr := func(x []Element, sizes []int, set []Element) error { _, err := CountIn(x, sizes, set); return err }
	type refusal struct {
		name string
		err  error
		want error
	}
	tests := []refusal{
		{"identifier in two groups", groupErr([][][]byte{{phone(1), phone(2)}, {phone(3), phone(1)}}), ErrConfig},
		{"empty group", groupErr([][][]byte{{phone(1)}, {}}), ErrConfig},
		{"no groups", groupErr(nil), ErrConfig},
		{"sizes short", reblindErr(good, []int{2, 2}), ErrMalformed},
		{"sizes long", reblindErr(good, []int{2, 4}), ErrMalformed},
		{"size zero", reblindErr(good, []int{0, 5}), ErrMalformed},
		{"size negative", reblindErr(good, []int{6, -1}), ErrMalformed},
		{"sizes for an empty list", reblindErr(nil, []int{1}), ErrMalformed},
		{"duplicate in Reblind", reblindErr(dup, nil), ErrDuplicate},
		{"duplicate in Unblind", unblindErr(dup), ErrDuplicate},
		{"duplicate in Intersect", intersectErr(good, dup), ErrDuplicate},
		{"nothing to intersect", intersectErr(), ErrConfig},
		{"duplicate in CountIn's list", countErr(dup, []int{len(dup)}, good), ErrDuplicate},
		{"duplicate in CountIn's set", countErr(good, []int{5}, dup), ErrDuplicate},
		{"CountIn sizes", countErr(good, []int{4}, good), ErrMalformed},
		{"CountIn without sizes", countErr(good, nil, good), ErrMalformed},
	}
	for _, h := range rfc9496BadEncodings {
		bad := append(slices.Clone(good[:3]), hexElement(t, h))
		tests = append(tests,
			refusal{"Reblind " + h, reblindErr(bad, []int{2, 2}), ErrElement},
			refusal{"Unblind " + h, unblindErr(bad), ErrElement})
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if _, err := NewBlinder(SessionID{}, 0); !errors.Is(err, ErrConfig) {
		t.Errorf("zero session: %v", err)
	}
	if _, err := NewBlinder(sid, -1); !errors.Is(err, ErrConfig) {
		t.Errorf("negative workers: %v", err)
	}
	b.Close()
	if _, err := b.Hash(phones(1)); !errors.Is(err, ErrReplay) {
		t.Errorf("Hash after Close: %v", err)
	}
	if _, err := b.Reblind(good, nil); !errors.Is(err, ErrReplay) {
		t.Errorf("Reblind after Close: %v", err)
	}
}

// rawList is a list encoded without checks.
type rawList struct {
	tag   byte
	elems []Element
	// sizes, written when non-nil (tag 0 needs them)
	sizes []uint32
}

// rawChain encodes lists without checking anything; count is the number of
// lists written in the header.
func rawChain(version, typ byte, sid SessionID, count byte, lists ...rawList) []byte {
	b := append([]byte{version, typ}, sid[:]...)
	b = append(b, count)
	for _, l := range lists {
		b = append(b, l.tag)
		b = binary.BigEndian.AppendUint32(b, uint32(len(l.elems)))
		for _, e := range l.elems {
			b = append(b, e[:]...)
		}
		if l.sizes != nil {
			b = binary.BigEndian.AppendUint32(b, uint32(len(l.sizes)))
			for _, s := range l.sizes {
				b = binary.BigEndian.AppendUint32(b, s)
			}
		}
	}
	return b
}

func TestChainEncoding(t *testing.T) {
	sid := testSession(t)
	e := make([]Element, 5)
	for i := range e {
		e[i] = randomElement()
	}
	x := rawList{0, e[:3], []uint32{2, 1}}
	y1 := rawList{1, e[3:], nil}
	y2 := rawList{2, nil, nil}
	good := rawChain(Version, typeChain, sid, 3, x, y1, y2)
	var c Chain
	if err := c.UnmarshalBinary(good); err != nil {
		t.Fatal(err)
	}
	want := Chain{Session: sid, Lists: []ChainList{
		{Tag: 0, Sizes: []int{2, 1}, Elements: e[:3]},
		{Tag: 1, Elements: e[3:]},
		{Tag: 2, Elements: []Element{}},
	}}
	if c.Session != want.Session || len(c.Lists) != 3 {
		t.Fatalf("decoded %+v", c)
	}
	for i := range want.Lists {
		g, w := c.Lists[i], want.Lists[i]
		if g.Tag != w.Tag || !slices.Equal(g.Sizes, w.Sizes) || !slices.Equal(g.Elements, w.Elements) {
			t.Fatalf("list %d: got %+v, want %+v", i, g, w)
		}
	}
	if out := must[[]byte](t)(want.MarshalBinary()); !bytes.Equal(out, good) {
		t.Fatalf("encoding differs:\n got %x\nwant %x", out, good)
	}

	// Every tag once is the most a Chain holds.
	var all []rawList
	for tag := range byte(MaxChainParties + 1) {
		l := rawList{tag, []Element{e[tag%5]}, nil}
		if tag == 0 {
			l.sizes = []uint32{1}
		}
		all = append(all, l)
	}
	if err := c.UnmarshalBinary(rawChain(Version, typeChain, sid, MaxChainParties+1, all...)); err != nil {
		t.Fatalf("all %d tags: %v", MaxChainParties+1, err)
	}

	tooMany := slices.Concat([]byte{Version, typeChain}, sid[:], []byte{1, 1}, binary.BigEndian.AppendUint32(nil, MaxElements+1))
	type refusal struct {
		name string
		data []byte
		want error
	}
	tests := []refusal{
		{"empty", nil, ErrMalformed},
		{"trailing byte", append(slices.Clone(good), 0), ErrMalformed},
		{"version", rawChain(Version+1, typeChain, sid, 3, x, y1, y2), ErrVersion},
		{"request type", rawChain(Version, typeRequest, sid, 3, x, y1, y2), ErrMalformed},
		{"no lists", rawChain(Version, typeChain, sid, 0), ErrMalformed},
		{"count above lists", rawChain(Version, typeChain, sid, 4, x, y1, y2), ErrMalformed},
		{"count below lists", rawChain(Version, typeChain, sid, 2, x, y1, y2), ErrMalformed},
		{"too many lists", rawChain(Version, typeChain, sid, MaxChainParties+2, append(all, rawList{1, e[:1], nil})...), ErrMalformed},
		{"duplicate tag", rawChain(Version, typeChain, sid, 3, x, y1, rawList{1, e[:1], nil}), ErrMalformed},
		{"duplicate tag 0", rawChain(Version, typeChain, sid, 2, x, rawList{0, e[3:], []uint32{2}}), ErrMalformed},
		{"tag too high", rawChain(Version, typeChain, sid, 1, rawList{MaxChainParties + 1, e[:1], nil}), ErrMalformed},
		{"sizes short", rawChain(Version, typeChain, sid, 1, rawList{0, e[:3], []uint32{1, 1}}), ErrMalformed},
		{"sizes long", rawChain(Version, typeChain, sid, 1, rawList{0, e[:3], []uint32{2, 2}}), ErrMalformed},
		{"size zero", rawChain(Version, typeChain, sid, 1, rawList{0, e[:3], []uint32{3, 0}}), ErrMalformed},
		{"size overflows", rawChain(Version, typeChain, sid, 1, rawList{0, e[:3], []uint32{1, 1<<32 - 1, 3}}), ErrMalformed},
		{"no groups", rawChain(Version, typeChain, sid, 1, rawList{0, e[:3], []uint32{}}), ErrMalformed},
		{"no sizes", rawChain(Version, typeChain, sid, 1, rawList{0, e[:3], nil}), ErrMalformed},
		{"empty grouped list", rawChain(Version, typeChain, sid, 1, rawList{0, nil, []uint32{}}), ErrMalformed},
		{"sizes on a responder's list", rawChain(Version, typeChain, sid, 1, rawList{1, e[:3], []uint32{3}}), ErrMalformed},
		{"repeated element", rawChain(Version, typeChain, sid, 1, rawList{2, []Element{e[0], e[1], e[0]}, nil}), ErrDuplicate},
		{"too many elements", tooMany, ErrTooLarge},
	}
	for i := range len(good) {
		tests = append(tests, refusal{"truncated", good[:i], ErrMalformed})
	}
	for _, tt := range tests {
		var c Chain
		if err := c.UnmarshalBinary(tt.data); !errors.Is(err, tt.want) {
			t.Errorf("%s (%d bytes): %v, want %v", tt.name, len(tt.data), err, tt.want)
		}
	}

	// Elements are not decoded on parsing: Reblind refuses a bad one.
	bad := hexElement(t, rfc9496BadEncodings[1])
	msg := rawChain(Version, typeChain, sid, 1, rawList{1, []Element{e[0], bad}, nil})
	if err := c.UnmarshalBinary(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := newBlinder(t, sid).Reblind(c.Lists[0].Elements, nil); !errors.Is(err, ErrElement) {
		t.Errorf("Reblind of a non-canonical element: %v", err)
	}

	// MarshalBinary refuses what UnmarshalBinary would.
	marshalTests := []struct {
		name string
		c    Chain
	}{
		{"no lists", Chain{Session: sid}},
		{"too many lists", Chain{Session: sid, Lists: make([]ChainList, MaxChainParties+2)}},
		{"duplicate tag", Chain{Session: sid, Lists: []ChainList{{Tag: 1}, {Tag: 1}}}},
		{"tag too high", Chain{Session: sid, Lists: []ChainList{{Tag: MaxChainParties + 1}}}},
		{"grouped list without sizes", Chain{Session: sid, Lists: []ChainList{{Tag: 0, Elements: e[:1]}}}},
		{"sizes not adding up", Chain{Session: sid, Lists: []ChainList{{Tag: 0, Sizes: []int{1}, Elements: e[:2]}}}},
		{"sizes on a responder's list", Chain{Session: sid, Lists: []ChainList{{Tag: 2, Sizes: []int{2}, Elements: e[:2]}}}},
		{"repeated element", Chain{Session: sid, Lists: []ChainList{{Tag: 2, Elements: []Element{e[0], e[0]}}}}},
	}
	for _, tt := range marshalTests {
		if _, err := tt.c.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary accepts %s", tt.name)
		}
	}
}

func FuzzChainUnmarshal(f *testing.F) {
	groups, responders := chainInputs(3, 12, 3)
	_, sent := chainRun(f, testSession(f), groups, responders)
	if len(sent) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, s := range sent {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Chain
		if err := c.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted chain does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip differs:\n in %x\nout %x", data, out)
		}
	})
}
