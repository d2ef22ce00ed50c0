// Package parallel spreads per-element group arithmetic over cores for
// kura's cryptographic backend (mpc/psi, mpc/elgamal).
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Block is how many items For hands fn at a time: small
// enough that cores running at different speeds finish together, large
// enough that fn's per-call setup vanishes.
const Block = 256

// For runs fn over [0, n) on at most workers goroutines, handing out
// contiguous blocks of Block items in order, and returns the error
// of the first failing block. Once a block fails no new block starts, but
// every block before it has started and runs to its end, so the error is
// the one serial code would meet first. workers < 1 means
// runtime.GOMAXPROCS(0).
func For(workers, n int, fn func(lo, hi int) error) error {
	if n == 0 {
		return nil
	}
	if workers < 1 {
		workers = runtime.GOMAXPROCS(0)
	}
	blocks := (n + Block - 1) / Block
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
				lo := b * Block
				if errs[b] = fn(lo, min(lo+Block, n)); errs[b] != nil {
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
