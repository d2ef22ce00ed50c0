package dataset

import (
	"context"
	"crypto/sha256"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// genReader yields n bytes of a cheap deterministic pattern.
type genReader struct{ off, n int64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.n-g.off)]
	for i := range p {
		p[i] = byte((g.off + int64(i)) * 31 >> 3)
	}
	g.off += int64(len(p))
	return len(p), nil
}

// TestOneGiBBoundedMemory seals 1 GiB into a pipe that is opened at the same
// time, and checks the plaintext survives and the heap stays small.
func TestOneGiBBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB round trip skipped in -short mode")
	}
	const size = 1 << 30
	const limit = 256 << 20
	key := testKey(9)
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	pr, pw := io.Pipe()
	want := sha256.New()
	sealErr := make(chan error, 1)
	go func() {
		err := Seal(context.Background(), pw, io.TeeReader(&genReader{n: size}, want), key, testHeader(0), Options{})
		pw.CloseWithError(err)
		sealErr <- err
	}()
	got := sha256.New()
	var n countWriter
	h, err := Open(context.Background(), io.MultiWriter(got, &n), pr, key, Options{})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-sealErr; err != nil {
		t.Fatal(err)
	}
	if n != size || string(got.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatalf("round trip of 1 GiB: %d bytes, digests differ: %v", n, string(got.Sum(nil)) != string(want.Sum(nil)))
	}
	t.Logf("chunk size %d, peak heap in use %d MiB", h.ChunkSize, peak.Load()>>20)
	if peak.Load() > limit {
		t.Fatalf("peak heap in use %d MiB, want under %d MiB", peak.Load()>>20, limit>>20)
	}
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
