package psi

import (
	"runtime"
	"testing"
)

// BenchmarkPSI runs a whole 100k × 100k session (both parties on this
// machine, messages through their wire encodings) and reports elements/s
// per core, counting each party's elements once: (|A|+|B|) / s / GOMAXPROCS.
func BenchmarkPSI(b *testing.B) {
	const n = 100_000
	a, bb := sets(n, n, n/2)
	for _, mode := range []Mode{ModeRows, ModeCardinality} {
		b.Run(mode.String(), func(b *testing.B) {
			for b.Loop() {
				cfg := Config{Session: testSession(b), Mode: mode}
				s, err := NewSender(cfg, a)
				if err != nil {
					b.Fatal(err)
				}
				r, err := NewReceiver(cfg, bb)
				if err != nil {
					b.Fatal(err)
				}
				req, _ := s.Request()
				raw, _ := req.MarshalBinary()
				var req2 Request
				if err := req2.UnmarshalBinary(raw); err != nil {
					b.Fatal(err)
				}
				resp, err := r.Respond(&req2)
				if err != nil {
					b.Fatal(err)
				}
				raw, _ = resp.MarshalBinary()
				var resp2 Response
				if err := resp2.UnmarshalBinary(raw); err != nil {
					b.Fatal(err)
				}
				res, err := s.Finish(&resp2)
				if err != nil {
					b.Fatal(err)
				}
				if res.Size() != n/2 {
					b.Fatalf("Size = %d", res.Size())
				}
			}
			elems := float64(len(a)+len(bb)) * float64(b.N)
			b.ReportMetric(elems/b.Elapsed().Seconds()/float64(runtime.GOMAXPROCS(0)), "elements/s/core")
		})
	}
}
