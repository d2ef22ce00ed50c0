package psi

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cloudflare/circl/group"
)

func testSession(t testing.TB) SessionID {
	t.Helper()
	sid, err := NewSessionID(nil)
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

// phone returns a distinct identifier that looks like a normalised number.
func phone(i int) []byte { return fmt.Appendf(nil, "+4479%08d", i) }

// sets returns A's ids (with repeats) and B's distinct ids sharing overlap
// distinct identifiers.
func sets(nA, nB, overlap int) (a, b [][]byte) {
	for i := range nA {
		a = append(a, phone(i))
	}
	a = append(a, phone(0), phone(1), phone(nA-1)) // repeated rows
	for i := range nB {
		b = append(b, phone(nA-overlap+i))
	}
	return a, b
}

type run struct {
	req, resp []byte
	res       *Result
}

// session runs the protocol end to end through the wire encodings.
func session(t *testing.T, cfg Config, a, b [][]byte) run {
	t.Helper()
	s, err := NewSender(cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	return exchange(t, cfg, s, b)
}

// exchange runs a session of sender s with a receiver of b through the
// wire encodings.
func exchange(t *testing.T, cfg Config, s *Sender, b [][]byte) run {
	t.Helper()
	r, err := NewReceiver(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	reqBytes, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var gotReq Request
	if err := gotReq.UnmarshalBinary(reqBytes); err != nil {
		t.Fatal(err)
	}
	resp, err := r.Respond(&gotReq)
	if err != nil {
		t.Fatal(err)
	}
	respBytes, err := resp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var gotResp Response
	if err := gotResp.UnmarshalBinary(respBytes); err != nil {
		t.Fatal(err)
	}
	res, err := s.Finish(&gotResp)
	if err != nil {
		t.Fatal(err)
	}
	return run{reqBytes, respBytes, res}
}

// plainJoin returns A's rows whose id is in b.
func plainJoin(a, b [][]byte) []int {
	in := map[string]bool{}
	for _, id := range b {
		in[string(id)] = true
	}
	var rows []int
	for row, id := range a {
		if in[string(id)] {
			rows = append(rows, row)
		}
	}
	return rows
}

func TestRows(t *testing.T) {
	a, b := sets(3000, 2000, 700)
	cfg := Config{Session: testSession(t), Mode: ModeRows}
	got := session(t, cfg, a, b).res
	want := plainJoin(a, b)
	if !slices.Equal(got.Rows(), want) {
		t.Fatalf("rows: got %d rows, want %d", len(got.Rows()), len(want))
	}
	if got.Size() != 700 {
		t.Errorf("Size = %d, want 700", got.Size())
	}
}

func TestCardinality(t *testing.T) {
	for _, overlap := range []int{0, 1, 999, 1000} {
		a, b := sets(1000, 1500, overlap)
		cfg := Config{Session: testSession(t), Mode: ModeCardinality}
		res := session(t, cfg, a, b).res
		if res.Size() != overlap {
			t.Errorf("overlap %d: Size = %d", overlap, res.Size())
		}
		if res.Rows() != nil {
			t.Errorf("cardinality mode reveals rows")
		}
		if _, err := res.Aggregate(make([]string, len(a)), nil, 1); !errors.Is(err, ErrMode) {
			t.Errorf("Aggregate in cardinality mode: %v, want ErrMode", err)
		}
	}
}

func TestAggregateThreshold(t *testing.T) {
	const threshold = 10
	// A's rows: group "big" has threshold matches, "small" threshold-1,
	// "none" zero; every id also appears once in "dup" rows to check that
	// repeats count once per group.
	var a [][]byte
	var keys []string
	var values []int64
	var b [][]byte
	add := func(key string, id []byte, inB bool, v int64) {
		a, keys, values = append(a, id), append(keys, key), append(values, v)
		if inB {
			b = append(b, id)
		}
	}
	n := 0
	for i := range threshold + 5 {
		add("big", phone(n), i < threshold, int64(i))
		n++
	}
	for i := range threshold + 5 {
		add("small", phone(n), i < threshold-1, 100)
		n++
	}
	for range 20 {
		add("none", phone(n), false, 1)
		n++
	}
	add("big", phone(0), true, 1000) // same id as row 0: one more row, same id
	for i := range 50 {
		b = append(b, fmt.Appendf(nil, "only-in-b-%d", i))
	}
	cfg := Config{Session: testSession(t), Mode: ModeRows}
	res := session(t, cfg, a, b).res
	got, err := res.Aggregate(keys, values, threshold)
	if err != nil {
		t.Fatal(err)
	}
	// Plaintext reference.
	wantSum := int64(1000)
	for i := range threshold {
		wantSum += int64(i)
	}
	want := []Group{{Key: "big", IDs: threshold, Rows: threshold + 1, Sum: wantSum}}
	if !slices.Equal(got, want) {
		t.Fatalf("Aggregate = %+v, want %+v", got, want)
	}
	all, err := res.Aggregate(keys, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	want = []Group{{Key: "big", IDs: threshold, Rows: threshold + 1}, {Key: "small", IDs: threshold - 1, Rows: threshold - 1}}
	if !slices.Equal(all, want) {
		t.Fatalf("Aggregate(threshold 1) = %+v, want %+v", all, want)
	}
	if _, err := res.Aggregate(keys, nil, 0); !errors.Is(err, ErrConfig) {
		t.Errorf("threshold 0: %v, want ErrConfig", err)
	}
	if _, err := res.Aggregate(keys[1:], nil, 1); !errors.Is(err, ErrConfig) {
		t.Errorf("short keys: %v, want ErrConfig", err)
	}
	values[0], values[1] = 1<<62, 1<<62
	values[2] = 1 << 62
	if _, err := res.Aggregate(keys, values, 1); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflow: %v, want ErrOverflow", err)
	}
}

func TestNoRawIdentifiers(t *testing.T) {
	a, b := sets(500, 500, 200)
	for _, mode := range []Mode{ModeRows, ModeCardinality} {
		r := session(t, Config{Session: testSession(t), Mode: mode}, a, b)
		for _, id := range append(slices.Clone(a), b...) {
			if bytes.Contains(r.req, id) || bytes.Contains(r.resp, id) {
				t.Fatalf("%v: identifier %q appears in a message", mode, id)
			}
		}
	}
}

func TestDuplicates(t *testing.T) {
	cfg := Config{Session: testSession(t), Mode: ModeRows}
	a := [][]byte{[]byte("x"), []byte("y"), []byte("x"), []byte("x")}
	b := [][]byte{[]byte("x"), []byte("z"), []byte("z")}
	r := session(t, cfg, a, b)
	var req Request
	if err := req.UnmarshalBinary(r.req); err != nil {
		t.Fatal(err)
	}
	if len(req.Elements) != 2 {
		t.Errorf("request has %d elements, want 2 (multiplicity must not show)", len(req.Elements))
	}
	var resp Response
	if err := resp.UnmarshalBinary(r.resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Elements) != 2 {
		t.Errorf("response has %d own elements, want 2", len(resp.Elements))
	}
	if !slices.Equal(r.res.Rows(), []int{0, 2, 3}) || r.res.Size() != 1 {
		t.Errorf("Rows = %v, Size = %d", r.res.Rows(), r.res.Size())
	}
}

// TestOtherSession shows that elements are bound to their session: with
// both headers forged, nothing matches.
func TestOtherSession(t *testing.T) {
	a, b := sets(100, 100, 100)
	c1 := Config{Session: testSession(t), Mode: ModeCardinality}
	c2 := c1
	c2.Session = testSession(t)
	s, _ := NewSender(c1, a)
	r, _ := NewReceiver(c2, b)
	req, _ := s.Request()
	req.Session = c2.Session
	resp, err := r.Respond(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Session = c1.Session
	res, err := s.Finish(resp)
	if err != nil {
		t.Fatal(err)
	}
	if res.Size() != 0 {
		t.Errorf("cross-session Size = %d, want 0", res.Size())
	}
}

func TestConfig(t *testing.T) {
	sid := testSession(t)
	for name, tc := range map[string]struct {
		cfg Config
		a   [][]byte
	}{
		"zero session":  {Config{Mode: ModeRows}, [][]byte{{1}}},
		"no mode":       {Config{Session: sid}, [][]byte{{1}}},
		"too many":      {Config{Session: sid, Mode: ModeRows, MaxElements: 1}, [][]byte{{1}, {2}}},
		"max above cap": {Config{Session: sid, Mode: ModeRows, MaxElements: MaxElements + 1}, [][]byte{{1}}},
	} {
		_, errS := NewSender(tc.cfg, tc.a)
		_, errR := NewReceiver(tc.cfg, tc.a)
		if !errors.Is(errS, ErrConfig) && !errors.Is(errR, ErrConfig) {
			t.Errorf("%s: sender %v, receiver %v; want ErrConfig", name, errS, errR)
		}
	}
	if _, err := NewSender(Config{Session: sid, Mode: ModeRows}, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("empty sender set: %v", err)
	}
	if n := (Config{Session: sid, Mode: ModeRows, MaxElements: 10}).MaxMessageSize(); n != responseHeaderSize+4+10*64 {
		t.Errorf("MaxMessageSize = %d", n)
	}
}

func TestErrorsWrapRoot(t *testing.T) {
	for _, err := range []error{ErrConfig, ErrMalformed, ErrVersion, ErrTooLarge, ErrElement,
		ErrDuplicate, ErrSession, ErrMode, ErrReplay, ErrMismatch, ErrOverflow} {
		if !errors.Is(err, ErrPSI) {
			t.Errorf("%v does not wrap ErrPSI", err)
		}
	}
}

// randomElement returns a valid element nobody's identifier maps to.
func randomElement() Element {
	var seed [32]byte
	rand.Read(seed[:])
	var e Element
	encode(group.Ristretto255.HashToElement(seed[:], []byte("test")), &e)
	return e
}
