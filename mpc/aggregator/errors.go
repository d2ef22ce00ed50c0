package aggregator

import (
	"errors"
	"fmt"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/mpc/prio"
)

// ErrAggregation is the family of this package's sentinels: every one below
// wraps it and carries its kind of failure (internal/fault).
var ErrAggregation = errors.New("secret-shared aggregation failed")

// Sentinel errors. The codes are problem types of the HTTP API
// (docs/spec/prio.md §4.6); never change one.
var (
	// ErrTaskFile means a task file does not parse or is inconsistent
	// (CLI exit 8).
	ErrTaskFile = fault.New(ErrAggregation, fault.Invalid, "prio: invalid task file")
	// ErrUnknownTask means this aggregator serves no such task, or not in
	// the role the request needs (404).
	ErrUnknownTask = fault.NewCode(ErrAggregation, fault.NotFound, "unknown-task", "prio: no such task at this aggregator")
	// ErrMalformed means a request, report or answer does not decode (400).
	ErrMalformed = fault.NewCode(ErrAggregation, fault.Malformed, "malformed-report", "prio: malformed message")
	// ErrReplay means a report nonce this aggregator has already seen (400).
	ErrReplay = fault.NewCode(ErrAggregation, fault.Stale, "replayed-report", "prio: replayed report")
	// ErrInvalidReport means a report failed preparation: its proof does
	// not verify, or a share was tampered with (400).
	ErrInvalidReport = fault.NewCode(ErrAggregation, fault.Invalid, "invalid-report", "prio: report rejected")
	// ErrCollected means the task's batch was already collected: it takes
	// no more reports and is not collected again (409).
	ErrCollected = fault.NewCode(ErrAggregation, fault.Conflict, "batch-collected", "prio: batch already collected")
	// ErrBatchTooSmall means a collection asked for fewer reports than the
	// task's min_batch_size (403).
	ErrBatchTooSmall = fault.NewCode(ErrAggregation, fault.Denied, "batch-too-small", "prio: batch smaller than min_batch_size")
	// ErrMismatch means the two aggregators' shares do not describe the
	// same batch (different report counts, another task) (CLI exit 6).
	ErrMismatch = fault.New(ErrAggregation, fault.Tampered, "prio: aggregators disagree")
	// ErrHelper means the leader could not run an aggregation job with the
	// helper (503, retry later).
	ErrHelper = fault.New(ErrAggregation, fault.Unavailable, "prio: helper unavailable")
)

// sentinelFor returns the sentinel above whose problem code is code, or
// nil, for clients reading a problem answer.
func sentinelFor(code string) error {
	for _, e := range []error{ErrUnknownTask, ErrMalformed, ErrReplay, ErrInvalidReport, ErrCollected, ErrBatchTooSmall} {
		if fault.CodeOf(e) == code {
			return e
		}
	}
	return nil
}

// classify wraps an error of package prio in this package's sentinel for
// it.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, prio.ErrReplay):
		return fmt.Errorf("%w: %w", ErrReplay, err)
	case errors.Is(err, prio.ErrInvalidReport):
		return fmt.Errorf("%w: %w", ErrInvalidReport, err)
	case errors.Is(err, prio.ErrMalformed), errors.Is(err, prio.ErrTask), errors.Is(err, prio.ErrMismatch):
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return err
}
