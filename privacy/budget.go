package privacy

import (
	"context"
	"fmt"
	"sync"
)

// State is what a Store keeps of a budget: ε spent by committed
// reservations, and ε held by open ones.
type State struct {
	Spent    Epsilon
	Reserved Epsilon
}

func (s State) equal(t State) bool {
	return s.Spent.Cmp(t.Spent) == 0 && s.Reserved.Cmp(t.Reserved) == 0
}

// A Store holds a budget's State. Every process charging the same budget
// shares one Store; CompareAndSwap makes their updates atomic, so together
// they cannot overspend. A budget is only as strong as its Store: one that
// loses or rolls back writes gives the budget back.
type Store interface {
	// Load returns the current state (zero for a new budget).
	Load(ctx context.Context) (State, error)
	// CompareAndSwap replaces the state with next if it is still old
	// (amounts compared by value), reporting whether it did.
	CompareAndSwap(ctx context.Context, old, next State) (bool, error)
}

// MemoryStore is a Store in memory, for one process and for tests. Its
// zero value is a new budget's store.
type MemoryStore struct {
	mu    sync.Mutex
	state State
}

// Load returns the current state.
func (m *MemoryStore) Load(context.Context) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

// CompareAndSwap replaces the state with next if it equals old.
func (m *MemoryStore) CompareAndSwap(_ context.Context, old, next State) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.state.equal(old) {
		return false, nil
	}
	m.state = next
	return true, nil
}

// Budget accounts ε-DP releases against a total under basic composition:
// the ε of every reservation is added, and a reservation that would take
// spent + reserved past the total is refused. A Budget keeps nothing of its
// own beyond its total and Store, and is safe for concurrent use; processes
// sharing a Store must be configured with the same total.
type Budget struct {
	total Epsilon
	store Store
}

// NewBudget returns a budget of total ε (positive) kept in store, or in a
// new MemoryStore when store is nil.
func NewBudget(total Epsilon, store Store) (*Budget, error) {
	if total.Sign() <= 0 {
		return nil, fmt.Errorf("%w: budget total %s not positive", ErrBadParameter, total)
	}
	if store == nil {
		store = new(MemoryStore)
	}
	return &Budget{total: total, store: store}, nil
}

// Total returns the budget's total ε.
func (b *Budget) Total() Epsilon { return b.total }

// State returns the budget's current state.
func (b *Budget) State(ctx context.Context) (State, error) { return b.store.Load(ctx) }

// ExhaustedError is the error Reserve returns when a reservation would
// exceed the total. It wraps ErrBudgetExhausted.
type ExhaustedError struct {
	Spent, Reserved, Requested, Total Epsilon
}

// Error names the four amounts.
func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("%v: spent %s + reserved %s + requested %s exceeds total %s",
		ErrBudgetExhausted, e.Spent, e.Reserved, e.Requested, e.Total)
}

// Unwrap returns ErrBudgetExhausted.
func (e *ExhaustedError) Unwrap() error { return ErrBudgetExhausted }

// Reserve holds eps (positive) of the budget, or refuses with an
// *ExhaustedError when spent + reserved + eps would exceed the total. Reserve
// before drawing noise; then Commit, or Release if nothing computed under
// the reservation left the process.
func (b *Budget) Reserve(ctx context.Context, eps Epsilon) (*Reservation, error) {
	if eps.Sign() <= 0 {
		return nil, fmt.Errorf("%w: reservation of %s not positive", ErrBadParameter, eps)
	}
	err := b.update(ctx, func(s State) (State, error) {
		if s.Spent.Add(s.Reserved).Add(eps).Cmp(b.total) > 0 {
			return s, &ExhaustedError{Spent: s.Spent, Reserved: s.Reserved, Requested: eps, Total: b.total}
		}
		return State{Spent: s.Spent, Reserved: s.Reserved.Add(eps)}, nil
	})
	if err != nil {
		return nil, err
	}
	return &Reservation{budget: b, eps: eps}, nil
}

// update applies f to the stored state until a CompareAndSwap succeeds, f
// fails, or ctx ends.
func (b *Budget) update(ctx context.Context, f func(State) (State, error)) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		old, err := b.store.Load(ctx)
		if err != nil {
			return fmt.Errorf("privacy: load budget: %w", err)
		}
		if old.Spent.Sign() < 0 || old.Reserved.Sign() < 0 {
			return fmt.Errorf("%w: spent %s, reserved %s", ErrCorruptState, old.Spent, old.Reserved)
		}
		next, err := f(old)
		if err != nil {
			return err
		}
		ok, err := b.store.CompareAndSwap(ctx, old, next)
		if err != nil {
			return fmt.Errorf("privacy: update budget: %w", err)
		}
		if ok {
			return nil
		}
	}
}

// A Reservation is ε held from a Budget until it is committed (spent) or
// released (given back). A process that dies holding one leaves it
// reserved: the budget errs towards spending, never overspending.
type Reservation struct {
	budget *Budget
	eps    Epsilon
	mu     sync.Mutex
	closed bool
}

// Epsilon returns the ε reserved.
func (r *Reservation) Epsilon() Epsilon { return r.eps }

// Commit spends the reservation. On a store error it stays open and may be
// committed again.
func (r *Reservation) Commit(ctx context.Context) error {
	return r.close(ctx, true)
}

// Release gives the reservation back. Release only when no value computed
// under it left the process; when in doubt, Commit.
func (r *Reservation) Release(ctx context.Context) error {
	return r.close(ctx, false)
}

func (r *Reservation) close(ctx context.Context, spend bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrReservationClosed
	}
	err := r.budget.update(ctx, func(s State) (State, error) {
		next := State{Spent: s.Spent, Reserved: s.Reserved.sub(r.eps)}
		if next.Reserved.Sign() < 0 {
			return s, fmt.Errorf("%w: reserved %s is less than a reservation of %s", ErrCorruptState, s.Reserved, r.eps)
		}
		if spend {
			next.Spent = s.Spent.Add(r.eps)
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	r.closed = true
	return nil
}
