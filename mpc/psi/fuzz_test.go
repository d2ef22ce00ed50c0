package psi

import (
	"bytes"
	"testing"
)

// seeds returns real encoded messages of every shape.
func seeds(f *testing.F) (reqs, resps [][]byte) {
	a, b := sets(6, 5, 3)
	for _, cfg := range []Config{
		{Session: testSession(f), Mode: ModeRows},
		{Session: testSession(f), Mode: ModeCardinality},
	} {
		s, err := NewSender(cfg, a)
		if err != nil {
			f.Fatal(err)
		}
		r, err := NewReceiver(cfg, b)
		if err != nil {
			f.Fatal(err)
		}
		req, _ := s.Request()
		resp, err := r.Respond(req)
		if err != nil {
			f.Fatal(err)
		}
		rb, _ := req.MarshalBinary()
		pb, _ := resp.MarshalBinary()
		reqs, resps = append(reqs, rb), append(resps, pb)
	}
	// ModeGroups, with payloads.
	cfg := Config{Session: testSession(f), Mode: ModeGroups, PayloadSize: 3}
	s, err := NewGroupSender(cfg, [][][]byte{a[:2], a[2:4]})
	if err != nil {
		f.Fatal(err)
	}
	payloads := make([][]byte, len(b))
	for i := range payloads {
		payloads[i] = []byte{1, 2, byte(i)}
	}
	r, err := NewPayloadReceiver(cfg, b, payloads)
	if err != nil {
		f.Fatal(err)
	}
	req, _ := s.Request()
	resp, err := r.Respond(req)
	if err != nil {
		f.Fatal(err)
	}
	rb, _ := req.MarshalBinary()
	pb, _ := resp.MarshalBinary()
	reqs, resps = append(reqs, rb), append(resps, pb)
	if len(reqs) == 0 || len(resps) == 0 {
		f.Fatal("empty seed corpus")
	}
	return reqs, resps
}

func FuzzRequestUnmarshal(f *testing.F) {
	reqs, _ := seeds(f)
	for _, s := range reqs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted request does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip differs:\n in %x\nout %x", data, out)
		}
	})
}

func FuzzResponseUnmarshal(f *testing.F) {
	_, resps := seeds(f)
	for _, s := range resps {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Response
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted response does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip differs:\n in %x\nout %x", data, out)
		}
	})
}
