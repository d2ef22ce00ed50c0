package agent

import (
	"errors"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrAgent is the family of this package's errors.
var ErrAgent = errors.New("mpc agent failed")

// Errors callers tell apart; each wraps ErrAgent and carries its kind.
var (
	// ErrMalformed: a message that does not parse.
	ErrMalformed = fault.New(ErrAgent, fault.Malformed, "mpc: malformed message")
	// ErrRefused: the run is not one this owner approved (analysis not on
	// the mpc backend, a missing approval, another party's dataset, an
	// expired manifest, max_runs reached).
	ErrRefused = fault.NewCode(ErrAgent, fault.Denied, "mpc-refused", "mpc: run refused")
	// ErrBudget: the run would overspend a dataset's privacy budget.
	ErrBudget = fault.NewCode(ErrAgent, fault.Denied, "privacy-budget-exhausted", "mpc: privacy budget exhausted")
	// ErrTampered: a message does not match what its sender signed.
	ErrTampered = fault.New(ErrAgent, fault.Tampered, "mpc: message does not match its signature")
	// ErrReplay: a run or session id seen before, or a second request for
	// one run.
	ErrReplay = fault.NewCode(ErrAgent, fault.Conflict, "mpc-replay", "mpc: replayed run")
	// ErrNoRun: no pending run with that id (unknown, expired or used).
	ErrNoRun = fault.New(ErrAgent, fault.NotFound, "mpc: no such pending run")
	// ErrPeer: the other agent failed or answered with an error.
	ErrPeer = fault.New(ErrAgent, fault.Unavailable, "mpc: peer agent failed")
)
