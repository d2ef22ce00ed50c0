package psi

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// groupSession runs a ModeGroups session through the wire encodings and
// returns the request bytes and A's per-group counts.
func groupSession(t *testing.T, groups [][][]byte, b [][]byte) ([]byte, []int) {
	t.Helper()
	cfg := Config{Session: testSession(t), Mode: ModeGroups}
	s, err := NewGroupSender(cfg, groups)
	if err != nil {
		t.Fatal(err)
	}
	r := exchange(t, cfg, s, b)
	return r.req, r.res.Groups()
}

// TestGroups: A learns, per group, how many of its identifiers B holds,
// equal to the plaintext intersection of each group.
func TestGroups(t *testing.T) {
	var groups [][][]byte
	want := []int{}
	b := map[string]bool{}
	var bList [][]byte
	for i := range 300 {
		if i%3 != 0 {
			b[string(phone(i))] = true
			bList = append(bList, phone(i))
		}
	}
	for g := range 5 {
		var ids [][]byte
		n := 0
		for i := g * 60; i < g*60+40+g; i++ {
			ids = append(ids, phone(i))
			if b[string(phone(i))] {
				n++
			}
		}
		ids = append(ids, phone(g*60)) // a repeated row counts once
		groups = append(groups, ids)
		want = append(want, n)
	}
	reqBytes, got := groupSession(t, groups, bList)
	if len(got) != len(want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("groups %v, want %v", got, want)
		}
	}
	for i := range 300 {
		if containsBytes(reqBytes, phone(i)) {
			t.Fatal("the request holds a raw identifier")
		}
	}
}

func containsBytes(b, sub []byte) bool {
	for i := 0; i+len(sub) <= len(b); i++ {
		if string(b[i:i+len(sub)]) == string(sub) {
			return true
		}
	}
	return false
}

// TestGroupsRefused: an identifier in two groups, an empty group, a
// request whose group sizes do not add up, and the wrong constructor.
func TestGroupsRefused(t *testing.T) {
	cfg := Config{Session: testSession(t), Mode: ModeGroups}
	if _, err := NewGroupSender(cfg, [][][]byte{{phone(1)}, {phone(2), phone(1)}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("identifier in two groups: %v", err)
	}
	if _, err := NewGroupSender(cfg, [][][]byte{{phone(1)}, {}}); !errors.Is(err, ErrConfig) {
		t.Fatalf("empty group: %v", err)
	}
	if _, err := NewSender(cfg, [][]byte{phone(1)}); !errors.Is(err, ErrConfig) {
		t.Fatalf("NewSender in ModeGroups: %v", err)
	}
	s, err := NewGroupSender(cfg, [][][]byte{{phone(1), phone(2)}, {phone(3)}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	good, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The last u32 is the second group's size: make the sizes 2+2 for 3
	// elements, then 2+0, then cut the sizes off.
	for name, bad := range map[string][]byte{
		"sum":       binary.BigEndian.AppendUint32(append([]byte(nil), good[:len(good)-4]...), 2),
		"empty":     binary.BigEndian.AppendUint32(append([]byte(nil), good[:len(good)-4]...), 0),
		"truncated": good[:len(good)-8],
		"trailing":  append(append([]byte(nil), good...), 0),
	} {
		var r Request
		if err := r.UnmarshalBinary(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	req.Groups = []int{1, 1}
	r, err := NewReceiver(cfg, [][]byte{phone(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Respond(req); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Respond to sizes that do not add up: %v", err)
	}
}

// TestGroupPayloads: B's payloads travel with its elements, shuffled with
// them, and A learns per group which of them matched: the payloads of the
// matches of each group are exactly those of the group's identifiers B
// holds.
func TestGroupPayloads(t *testing.T) {
	cfg := Config{Session: testSession(t), Mode: ModeGroups, PayloadSize: 8}
	groups := [][][]byte{{phone(1), phone(2), phone(3)}, {phone(4), phone(5)}, {phone(6)}}
	var b, payloads [][]byte
	for _, i := range []int{2, 3, 5, 6, 9} {
		b = append(b, phone(i))
		payloads = append(payloads, binary.BigEndian.AppendUint64(nil, uint64(i)))
	}
	s, err := NewGroupSender(cfg, groups)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewPayloadReceiver(cfg, b, payloads)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := r.Respond(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := resp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Response
	if err := got.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	res, err := s.Finish(&got)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]uint64{{2, 3}, {5}, {6}}
	for g, idx := range res.Matches() {
		var vals []uint64
		for _, j := range idx {
			vals = append(vals, binary.BigEndian.Uint64(got.Payloads[j*8:]))
		}
		slices.Sort(vals)
		if !slices.Equal(vals, want[g]) {
			t.Errorf("group %d: payloads %v, want %v", g, vals, want[g])
		}
	}
	// A payload cut short, or of another size than the session's, is
	// refused.
	if err := new(Response).UnmarshalBinary(raw[:len(raw)-1]); !errors.Is(err, ErrMalformed) {
		t.Errorf("payload cut short: %v", err)
	}
	s2, _ := NewGroupSender(Config{Session: cfg.Session, Mode: ModeGroups}, groups)
	s2.Request()
	if _, err := s2.Finish(&got); !errors.Is(err, ErrMismatch) {
		t.Errorf("payloads in a session without: %v", err)
	}
	if _, err := NewPayloadReceiver(cfg, b, payloads[:2]); !errors.Is(err, ErrConfig) {
		t.Errorf("fewer payloads than identifiers: %v", err)
	}
}

// TestRequestPayloads: A's payloads, sent apart from the request, come back
// shuffled with B's answer within each group, and the positions of each
// group's matches pick exactly the payloads of A's identifiers B holds.
func TestRequestPayloads(t *testing.T) {
	cfg := Config{Session: testSession(t), Mode: ModeGroups}
	groups := [][][]byte{{phone(1), phone(2), phone(3)}, {phone(4), phone(5)}}
	s, err := NewGroupSender(cfg, groups)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(cfg, [][]byte{phone(2), phone(3), phone(5), phone(9)})
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	var payloads []byte
	for _, id := range s.Identifiers() {
		payloads = append(payloads, id...) // every phone(i) has the same length
	}
	size := len(phone(1))
	resp, back, err := r.RespondWithPayloads(req, payloads, size)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Finish(resp)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{string(phone(2)), string(phone(3))}, {string(phone(5))}}
	for g, pos := range res.RequestMatches() {
		var got []string
		for _, i := range pos {
			got = append(got, string(back[i*size:(i+1)*size]))
		}
		slices.Sort(got)
		if !slices.Equal(got, want[g]) {
			t.Errorf("group %d: %q, want %q", g, got, want[g])
		}
	}
	r2, _ := NewReceiver(cfg, nil)
	if _, _, err := r2.RespondWithPayloads(req, payloads[1:], size); !errors.Is(err, ErrMalformed) {
		t.Errorf("payloads of the wrong length: %v", err)
	}
}
