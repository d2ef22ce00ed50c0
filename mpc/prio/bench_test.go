package prio

import (
	"crypto/rand"
	"testing"

	"github.com/cloudflare/circl/vdaf/prio3/histogram"
	"github.com/cloudflare/circl/vdaf/prio3/sum"
)

// BenchmarkReports measures whole reports — shard, encode, prepare on both
// aggregators, aggregate — on one goroutine; reports/s is per core.
func BenchmarkReports(b *testing.B) {
	for _, bc := range []struct {
		name         string
		typ          Type
		bits, length uint
		m            Measurement
	}{
		{"sum32", TypeSum, 32, 0, Sum(1<<32 - 1)},
		{"histogram10", TypeHistogram, 0, 10, Bucket(7)},
	} {
		b.Run(bc.name+"/kura", func(b *testing.B) {
			task := newTask(b, bc.typ, bc.bits, bc.length)
			client, err := NewClient(task)
			if err != nil {
				b.Fatal(err)
			}
			leader, helper := newPair(b, task)
			for b.Loop() {
				r, err := client.Shard(bc.m, NewNonce())
				if err != nil {
					b.Fatal(err)
				}
				if err := Prepare(leader, helper, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
		})
		b.Run(bc.name+"/circl", func(b *testing.B) {
			task := newTask(b, bc.typ, bc.bits, bc.length)
			switch bc.typ {
			case TypeSum:
				v, err := sum.New(2, 1<<32-1, task.context())
				if err != nil {
					b.Fatal(err)
				}
				p := v.Params()
				benchCircl(b, v, bc.m.v, p.RandSize(), task)
			case TypeHistogram:
				v, err := histogram.New(2, bc.length, chunkLength(bc.length), task.context())
				if err != nil {
					b.Fatal(err)
				}
				p := v.Params()
				benchCircl(b, v, bc.m.v, p.RandSize(), task)
			}
		})
	}
}

// benchCircl runs the same report flow with circl's prio3 functions called
// directly, without kura's encodings and checks.
func benchCircl[M, A, IS, PSh, PSt, OS, AS any](b *testing.B, v prio3VDAF[M, A, IS, PSh, PSt, OS, AS], m M, randSize uint, task *Task) {
	var aggs [2]AS
	for i := range aggs {
		aggs[i] = v.AggregateInit()
	}
	vk := (*circlVerifyKey)(&task.VerifyKey)
	seed := make([]byte, randSize)
	for b.Loop() {
		nonce := (*circlNonce)(new(NewNonce()))
		_, _ = rand.Read(seed)
		pub, in, err := v.Shard(m, nonce, seed)
		if err != nil {
			b.Fatal(err)
		}
		var states [2]*PSt
		shares := make([]PSh, 2)
		for i := range 2 {
			st, ps, err := v.PrepInit(vk, nonce, uint8(i), pub, in[i])
			if err != nil {
				b.Fatal(err)
			}
			states[i], shares[i] = st, *ps
		}
		msg, err := v.PrepSharesToPrep(shares)
		if err != nil {
			b.Fatal(err)
		}
		for i := range 2 {
			out, err := v.PrepNext(states[i], msg)
			if err != nil {
				b.Fatal(err)
			}
			v.AggregateUpdate(&aggs[i], out)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}
