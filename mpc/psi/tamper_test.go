package psi

import (
	"encoding/binary"
	"errors"
	"testing"
)

// parties returns a fresh sender, receiver and request for one session.
func parties(t *testing.T, mode Mode) (*Sender, *Receiver, []byte) {
	t.Helper()
	a, b := sets(50, 40, 20)
	cfg := Config{Session: testSession(t), Mode: mode, MaxElements: 100}
	s, err := NewSender(cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReceiver(cfg, b)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.Request()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return s, r, raw
}

func edit(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }

func setCount(b []byte, at int, n uint32) []byte {
	binary.BigEndian.PutUint32(b[at:], n)
	return b
}

// Offsets in an encoded message.
const (
	elems = requestHeaderSize // first element of either message's first list
)

func TestTamperRequest(t *testing.T) {
	identity := make([]byte, 32)
	for name, tc := range map[string]struct {
		data func(raw []byte) []byte
		want error
	}{
		"low bit of element (negative s)": {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[elems] ^= 1; return b }) }, ErrElement},
		"high bit of element (s ≥ 2^255)": {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[elems+31] ^= 0x80; return b }) }, ErrElement},
		"identity element": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { copy(b[elems:], identity); return b })
		}, ErrElement},
		"duplicate element": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { copy(b[elems+32:], b[elems:elems+32]); return b })
		}, ErrDuplicate},
		"truncated":        {func(raw []byte) []byte { return raw[:len(raw)-1] }, ErrMalformed},
		"truncated header": {func(raw []byte) []byte { return raw[:10] }, ErrMalformed},
		"empty":            {func([]byte) []byte { return nil }, ErrMalformed},
		"trailing byte":    {func(raw []byte) []byte { return append(edit(raw, func(b []byte) []byte { return b }), 0) }, ErrMalformed},
		"count says more": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { return setCount(b, commonHeaderSize, 51) })
		}, ErrMalformed},
		"count zero": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { return setCount(b[:requestHeaderSize], commonHeaderSize, 0) })
		}, ErrMalformed},
		"count above cap": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { return setCount(b, commonHeaderSize, MaxElements+1) })
		}, ErrTooLarge},
		"version": {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[0] = 2; return b }) }, ErrVersion},
		"type":    {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[1] = typeResponse; return b }) }, ErrMalformed},
		"mode":    {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[2] = 9; return b }) }, ErrMalformed},
	} {
		// Element validity is Respond's to check, as it decodes.
		_, r, raw := parties(t, ModeRows)
		var req Request
		err := req.UnmarshalBinary(tc.data(raw))
		if err == nil {
			_, err = r.Respond(&req)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestRespondRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		f    func(*Request)
		want error
	}{
		"other session": {func(r *Request) { r.Session[0] ^= 1 }, ErrSession},
		"other mode":    {func(r *Request) { r.Mode = ModeCardinality }, ErrMode},
		"over config":   {func(r *Request) { r.Elements = make([]Element, 101) }, ErrTooLarge},
		"empty":         {func(r *Request) { r.Elements = nil }, ErrMalformed},
		"duplicate":     {func(r *Request) { r.Elements[1] = r.Elements[0] }, ErrDuplicate},
		"identity":      {func(r *Request) { r.Elements[3] = Element{} }, ErrElement},
	} {
		_, r, raw := parties(t, ModeRows)
		var req Request
		if err := req.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		tc.f(&req)
		if _, err := r.Respond(&req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestReplay(t *testing.T) {
	s, r, raw := parties(t, ModeRows)
	var req Request
	if err := req.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	resp, err := r.Respond(&req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Respond(&req); !errors.Is(err, ErrReplay) {
		t.Errorf("second Respond: %v, want ErrReplay", err)
	}
	if _, err := s.Request(); !errors.Is(err, ErrReplay) {
		t.Errorf("second Request: %v, want ErrReplay", err)
	}
	if _, err := s.Finish(resp); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(resp); !errors.Is(err, ErrReplay) {
		t.Errorf("second Finish: %v, want ErrReplay", err)
	}
	// A response from an earlier session, replayed into a new one.
	s2, _, _ := parties(t, ModeRows)
	if _, err := s2.Finish(resp); !errors.Is(err, ErrSession) {
		t.Errorf("old session's response: %v, want ErrSession", err)
	}
}

func TestTamperResponse(t *testing.T) {
	mk := func(mode Mode) (*Sender, []byte) {
		s, r, raw := parties(t, mode)
		var req Request
		if err := req.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		resp, err := r.Respond(&req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := resp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return s, b
	}
	second := responseHeaderSize + 50*32 // start of m
	own := second + 4                    // first own element
	for name, tc := range map[string]struct {
		data func(raw []byte) []byte
		want error
	}{
		"reblinded low bit":  {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[elems] ^= 1; return b }) }, ErrElement},
		"reblinded high bit": {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[elems+31] ^= 0x80; return b }) }, ErrElement},
		"own low bit":        {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[own] ^= 1; return b }) }, ErrElement},
		"own duplicate": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { copy(b[own+32:], b[own:own+32]); return b })
		}, ErrDuplicate},
		"truncated": {func(raw []byte) []byte { return raw[:len(raw)-1] }, ErrMalformed},
		"trailing":  {func(raw []byte) []byte { return append(edit(raw, func(b []byte) []byte { return b }), 1) }, ErrMalformed},
		"m above cap": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { return setCount(b, second, MaxElements+1) })
		}, ErrTooLarge},
		"m says more": {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { return setCount(b, second, 41) }) }, ErrMalformed},
		"n above cap": {func(raw []byte) []byte {
			return edit(raw, func(b []byte) []byte { return setCount(b, commonHeaderSize, MaxElements+1) })
		}, ErrTooLarge},
		"version": {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[0] = 0; return b }) }, ErrVersion},
		"type":    {func(raw []byte) []byte { return edit(raw, func(b []byte) []byte { b[1] = typeRequest; return b }) }, ErrMalformed},
	} {
		// Element validity is Finish's to check, as it decodes.
		s, raw := mk(ModeRows)
		var resp Response
		err := resp.UnmarshalBinary(tc.data(raw))
		if err == nil {
			_, err = s.Finish(&resp)
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Checks only Finish can make.
	for name, tc := range map[string]struct {
		f    func(*Response)
		want error
	}{
		"other session":         {func(r *Response) { r.Session[31] ^= 1 }, ErrSession},
		"other mode":            {func(r *Response) { r.Mode = ModeCardinality }, ErrMode},
		"dropped reblinded":     {func(r *Response) { r.Reblinded = r.Reblinded[1:] }, ErrMismatch},
		"over config":           {func(r *Response) { r.Elements = make([]Element, 101) }, ErrTooLarge},
		"identity (in-process)": {func(r *Response) { r.Elements[0] = Element{} }, ErrElement},
	} {
		s, raw := mk(ModeRows)
		var resp Response
		if err := resp.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		tc.f(&resp)
		if _, err := s.Finish(&resp); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// TestSubstitutedElement documents what cannot be detected: a valid
// element in place of another is indistinguishable from an absent
// identifier, so the result just loses that match.
func TestSubstitutedElement(t *testing.T) {
	for _, list := range []string{"reblinded", "own"} {
		s, r, raw := parties(t, ModeCardinality)
		var req Request
		if err := req.UnmarshalBinary(raw); err != nil {
			t.Fatal(err)
		}
		resp, err := r.Respond(&req)
		if err != nil {
			t.Fatal(err)
		}
		// Substitute every element of the list: all 20 matches vanish and
		// nothing is reported.
		target := resp.Reblinded
		if list == "own" {
			target = resp.Elements
		}
		for i := range target {
			target[i] = randomElement()
		}
		res, err := s.Finish(resp)
		if err != nil {
			t.Fatalf("%s: %v", list, err)
		}
		if res.Size() != 0 {
			t.Errorf("%s substituted: Size = %d, want 0", list, res.Size())
		}
	}
}

// TestBitFlips flips each bit of one request element: every flip is either
// refused as ErrElement or yields another valid element (which would then
// simply not match).
func TestBitFlips(t *testing.T) {
	_, _, raw := parties(t, ModeRows)
	valid := 0
	for bit := range 256 {
		b := edit(raw, func(b []byte) []byte { b[elems+bit/8] ^= 1 << (bit % 8); return b })
		var req Request
		err := req.UnmarshalBinary(b)
		switch {
		case err == nil:
			valid++
		case !errors.Is(err, ErrElement):
			t.Errorf("bit %d: %v, want ErrElement or success", bit, err)
		}
	}
	t.Logf("%d of 256 single-bit flips give another valid element", valid)
}
