package elgamal

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelBlock is the number of items a worker takes at a time.
const parallelBlock = 256

// parallel runs fn over [0, n) in blocks of parallelBlock items, handed to
// whichever of workers goroutines is free (GOMAXPROCS when workers < 1).
// It stops handing out blocks after the first error and returns the error
// of the lowest failing block.
func parallel(workers, n int, fn func(lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	blocks := (n + parallelBlock - 1) / parallelBlock
	workers = min(workers, blocks)
	if workers == 1 {
		return fn(0, n)
	}
	errs := make([]error, blocks)
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !failed.Load() {
				b := int(next.Add(1) - 1)
				if b >= blocks {
					return
				}
				lo := b * parallelBlock
				if errs[b] = fn(lo, min(lo+parallelBlock, n)); errs[b] != nil {
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
