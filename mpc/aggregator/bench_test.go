package aggregator

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/cloudflare/circl/vdaf/prio3/histogram"
	"github.com/cloudflare/circl/vdaf/prio3/sum"

	"github.com/kura-cc/kura/mpc/prio"
)

// BenchmarkReports measures whole reports on one goroutine, so reports/s
// is per core, for the parameters of mpc/prio's BenchmarkReports:
//
//   - service: a contributor shards and seals (NewReport), the leader
//     accepts the report (nonce check, PrepInit), the helper prepares it
//     (nonce check, HPKE open, PrepInit, combine, PrepNext), the leader
//     finishes it — the Service's code without HTTP;
//   - http: the same through Client.Submit and two loopback HTTP servers,
//     100 reports per upload and per aggregation job (the client, both
//     servers and the kernel share the machine: not per core);
//   - circl: circl's prio3 functions called directly (shard, both
//     PrepInits, combine, both PrepNexts, aggregate).
func BenchmarkReports(b *testing.B) {
	for _, bc := range []struct {
		name         string
		typ          prio.Type
		bits, length uint
		m            prio.Measurement
		v            uint64
	}{
		{"sum32", prio.TypeSum, 32, 0, prio.Sum(1<<32 - 1), 1<<32 - 1},
		{"histogram10", prio.TypeHistogram, 0, 10, prio.Bucket(7), 7},
	} {
		b.Run(bc.name+"/service", func(b *testing.B) {
			e := newEnv(b)
			l, h := e.task(b, bc.typ, bc.bits, bc.length, 1, e.collector)
			leader, helper := e.start(b, MaxReportsPerJob, [2]State{}, l, h)
			lt, ht := leader.tasks[l.ID()], helper.tasks[h.ID()]
			client, err := prio.NewClient(l.Prio.Public())
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				r, err := NewReport(l, client, bc.m)
				if err != nil {
					b.Fatal(err)
				}
				if err := leader.accept(ctx, lt, r); err != nil {
					b.Fatal(err)
				}
				q := lt.queue[0]
				lt.queue = lt.queue[:0]
				msg, reason, err := helper.prepare(ctx, ht, q.job)
				if reason != "" || err != nil {
					b.Fatal(reason, err)
				}
				if err := lt.agg.PrepNext(q.pending, msg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
		})
		b.Run(bc.name+"/http", func(b *testing.B) {
			e := newEnv(b)
			l, h := e.task(b, bc.typ, bc.bits, bc.length, 1, e.collector)
			e.start(b, MaxReportsPerUpload, [2]State{}, l, h)
			c := &Client{Task: l.Public()}
			ms := make([]prio.Measurement, MaxReportsPerUpload)
			for i := range ms {
				ms[i] = bc.m
			}
			n := 0
			for b.Loop() {
				if _, err := c.Submit(context.Background(), ms); err != nil {
					b.Fatal(err)
				}
				n += len(ms)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reports/s")
		})
		b.Run(bc.name+"/circl", func(b *testing.B) {
			pt, err := prio.NewTask(nil, bc.typ, bc.bits, bc.length)
			if err != nil {
				b.Fatal(err)
			}
			ctx := append([]byte("kura-prio-v1 "), pt.ID[:]...)
			vk := sum.VerifyKey(pt.VerifyKey)
			switch bc.typ {
			case prio.TypeSum:
				v, err := sum.New(2, 1<<bc.bits-1, ctx)
				if err != nil {
					b.Fatal(err)
				}
				p := v.Params()
				benchCircl(b, v, bc.v, p.RandSize(), &vk)
			case prio.TypeHistogram:
				v, err := histogram.New(2, bc.length, 3, ctx) // chunk length √10, as mpc/prio uses
				if err != nil {
					b.Fatal(err)
				}
				p := v.Params()
				benchCircl(b, v, bc.v, p.RandSize(), &vk)
			}
		})
	}
}

// circlVDAF is the part of circl's prio3 VDAFs the benchmark calls.
type circlVDAF[M, IS, PSh, PSt, OS, AS any] interface {
	Shard(M, *sum.Nonce, []byte) (sum.PublicShare, []IS, error)
	PrepInit(*sum.VerifyKey, *sum.Nonce, uint8, sum.PublicShare, IS) (*PSt, *PSh, error)
	PrepSharesToPrep([]PSh) (*sum.PrepMessage, error)
	PrepNext(*PSt, *sum.PrepMessage) (*OS, error)
	AggregateInit() AS
	AggregateUpdate(*AS, *OS)
}

func benchCircl[M, IS, PSh, PSt, OS, AS any](b *testing.B, v circlVDAF[M, IS, PSh, PSt, OS, AS], m M, randSize uint, vk *sum.VerifyKey) {
	var aggs [2]AS
	for i := range aggs {
		aggs[i] = v.AggregateInit()
	}
	seed := make([]byte, randSize)
	for b.Loop() {
		nonce := sum.Nonce(prio.NewNonce())
		_, _ = rand.Read(seed)
		pub, in, err := v.Shard(m, &nonce, seed)
		if err != nil {
			b.Fatal(err)
		}
		var states [2]*PSt
		shares := make([]PSh, 2)
		for i := range 2 {
			st, ps, err := v.PrepInit(vk, &nonce, uint8(i), pub, in[i])
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
