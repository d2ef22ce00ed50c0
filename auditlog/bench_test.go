package auditlog_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
)

// BenchmarkAppend measures durable appends (Append returns once the entry
// is fsync'd and integrated) from 1, 16 and 64 concurrent appenders;
// Tessera gathers concurrent appends into one write.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			l := openLog(b, b.TempDir(), newKey(b, "kura.bench/log"))
			var n atomic.Int64
			b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(context.Background(), entry(int(n.Add(1)))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "appends/s")
		})
	}
}

// BenchmarkVerifyProof measures offline inclusion-proof verification
// (checkpoint signature, Merkle path, entry decoding) in a 10000-entry log.
func BenchmarkVerifyProof(b *testing.B) {
	k := newKey(b, "kura.bench/log")
	l := openLog(b, b.TempDir(), k)
	appendN(b, l, 10000)
	p, err := l.Prove(context.Background(), 4321)
	if err != nil {
		b.Fatal(err)
	}
	v := k.Verifier()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := auditlog.VerifyProof(p, v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "verifications/s")
}
