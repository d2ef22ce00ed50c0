package parallel

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// TestParallelFirstError checks parallel covers every item once and
// returns the error serial code would meet first.
func TestParallelFirstError(t *testing.T) {
	for _, n := range []int{1, Block - 1, Block + 1, 10_000} {
		for _, workers := range []int{0, 1, 3, 64} {
			hits := make([]atomic.Int32, n)
			if err := For(workers, n, func(lo, hi int) error {
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("n %d workers %d: item %d visited %d times", n, workers, i, h)
				}
			}
			bad := map[int]bool{n - 1: true, n / 2: true, n / 3: true}
			first := n / 3
			err := For(workers, n, func(lo, hi int) error {
				for i := lo; i < hi; i++ {
					if bad[i] {
						return fmt.Errorf("item %d", i)
					}
				}
				return nil
			})
			if want := fmt.Sprintf("item %d", first); err == nil || err.Error() != want {
				t.Fatalf("n %d workers %d: error %v, want %s", n, workers, err, want)
			}
		}
	}
}
