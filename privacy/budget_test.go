package privacy

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kura-cc/kura/internal/fault"
)

func TestBudget(t *testing.T) {
	ctx := context.Background()
	b, err := NewBudget(mustEpsilon(t, "1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	half, err := b.Reserve(ctx, mustEpsilon(t, "0.5"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Reserve(ctx, mustEpsilon(t, "0.6"))
	var ex *ExhaustedError
	if !errors.Is(err, ErrBudgetExhausted) || !errors.As(err, &ex) || fault.KindOf(err) != fault.Denied {
		t.Fatalf("over-reservation: %v, want an ExhaustedError", err)
	}
	if ex.Spent.String() != "0" || ex.Reserved.String() != "0.5" || ex.Requested.String() != "0.6" || ex.Total.String() != "1" {
		t.Errorf("ExhaustedError = %+v", ex)
	}
	t.Log(err)
	if err := half.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := b.Reserve(ctx, mustEpsilon(t, "0.6"))
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if err := r.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx); !errors.Is(err, ErrReservationClosed) {
		t.Errorf("second Commit: %v", err)
	}
	if err := r.Release(ctx); !errors.Is(err, ErrReservationClosed) {
		t.Errorf("Release after Commit: %v", err)
	}
	last, err := b.Reserve(ctx, mustEpsilon(t, "0.4")) // exactly the rest
	if err != nil {
		t.Fatalf("reserving exactly the rest: %v", err)
	}
	if err := last.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(ctx, mustEpsilon(t, "0.000000000000000001")); !errors.Is(err, ErrBudgetExhausted) {
		t.Errorf("reserving past an exactly spent budget: %v", err)
	}
	s, err := b.State(ctx)
	if err != nil || s.Spent.String() != "1" || s.Reserved.Sign() != 0 {
		t.Errorf("state = %+v, %v; want spent 1, reserved 0", s, err)
	}
}

func TestBudgetBadInput(t *testing.T) {
	ctx := context.Background()
	if _, err := NewBudget(Epsilon{}, nil); !errors.Is(err, ErrBadParameter) {
		t.Errorf("zero total: %v", err)
	}
	b := must(NewBudget(mustEpsilon(t, "1"), nil))
	if _, err := b.Reserve(ctx, Epsilon{}); !errors.Is(err, ErrBadParameter) {
		t.Errorf("zero reservation: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Reserve(cancelled, mustEpsilon(t, "0.1")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
	// A store holding a negative amount is refused, not trusted.
	store := new(MemoryStore)
	store.state.Spent = Epsilon{}.sub(mustEpsilon(t, "5"))
	b = must(NewBudget(mustEpsilon(t, "1"), store))
	if _, err := b.Reserve(ctx, mustEpsilon(t, "1")); !errors.Is(err, ErrCorruptState) {
		t.Errorf("negative spent: %v", err)
	}
}

// checkingStore is a MemoryStore that yields between operations, to
// interleave goroutines, and fails the test if a state it stores ever
// exceeds the total.
type checkingStore struct {
	MemoryStore
	t     *testing.T
	total Epsilon
}

func (c *checkingStore) Load(ctx context.Context) (State, error) {
	runtime.Gosched()
	return c.MemoryStore.Load(ctx)
}

func (c *checkingStore) CompareAndSwap(ctx context.Context, old, next State) (bool, error) {
	runtime.Gosched()
	if next.Spent.Add(next.Reserved).Cmp(c.total) > 0 {
		c.t.Errorf("stored state %+v exceeds total %s", next, c.total)
	}
	return c.MemoryStore.CompareAndSwap(ctx, old, next)
}

// TestBudgetConcurrent has 400 goroutines, split between two Budgets that
// share one Store (two processes), each reserve 0.1 of a total of 10 at
// once: exactly 100 succeed. Then the holders commit or release at once:
// what is spent is exactly what was committed. No stored state ever exceeds
// the total.
func TestBudgetConcurrent(t *testing.T) {
	ctx := context.Background()
	total := mustEpsilon(t, "10")
	store := &checkingStore{t: t, total: total}
	budgets := []*Budget{must(NewBudget(total, store)), must(NewBudget(total, store))}
	eps := mustEpsilon(t, "0.1")

	reservations := make([]*Reservation, 400)
	var refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range reservations {
		wg.Go(func() {
			<-start
			r, err := budgets[i%2].Reserve(ctx, eps)
			switch {
			case errors.Is(err, ErrBudgetExhausted):
				refused.Add(1)
			case err != nil:
				t.Error(err)
			default:
				reservations[i] = r
			}
		})
	}
	close(start)
	wg.Wait()
	if refused.Load() != 300 {
		t.Fatalf("refused %d reservations, want 300", refused.Load())
	}

	var committed atomic.Int64
	for i, r := range reservations {
		if r == nil {
			continue
		}
		wg.Go(func() {
			if i%3 == 0 {
				if err := r.Release(ctx); err != nil {
					t.Error(err)
				}
				return
			}
			if err := r.Commit(ctx); err != nil {
				t.Error(err)
			}
			committed.Add(1)
		})
	}
	wg.Wait()
	s := must(store.Load(ctx))
	t.Logf("granted 100, refused %d, committed %d: spent %s, reserved %s", refused.Load(), committed.Load(), s.Spent, s.Reserved)
	want := must(NewEpsilon(committed.Load(), 10))
	if s.Spent.Cmp(want) != 0 || s.Reserved.Sign() != 0 {
		t.Errorf("state %+v, want spent %s and nothing reserved", s, want)
	}
}
