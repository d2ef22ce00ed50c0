package privacy

import (
	"errors"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrPrivacy is the family of this package's sentinels: every one wraps it
// and carries its kind of failure (internal/fault).
var ErrPrivacy = errors.New("differential privacy failed")

// Sentinel errors. Errors returned by this package wrap one of them; test
// with errors.Is.
var (
	// ErrMalformed means an ε or ρ string does not parse: not a
	// non-negative decimal ("0.5") or fraction ("1/3"), or too long.
	ErrMalformed = fault.New(ErrPrivacy, fault.Malformed, "privacy: malformed parameter")
	// ErrBadParameter means a parameter parses but is out of range: ε or ρ
	// not positive or above its limit, a sensitivity outside [1,
	// MaxSensitivity], a noise scale above MaxScale.
	ErrBadParameter = fault.New(ErrPrivacy, fault.BadRequest, "privacy: parameter out of range")
	// ErrBudgetExhausted means a reservation would take a budget past its
	// total. The error returned is an *ExhaustedError carrying the numbers.
	ErrBudgetExhausted = fault.New(ErrPrivacy, fault.Denied, "privacy: budget exhausted")
	// ErrReservationClosed means a reservation was already committed or
	// released.
	ErrReservationClosed = fault.New(ErrPrivacy, fault.Conflict, "privacy: reservation already closed")
	// ErrOverflow means a noisy value does not fit in an int64. It depends
	// only on the noisy value, so it is itself a private output (see
	// AddNoise).
	ErrOverflow = fault.New(ErrPrivacy, fault.BadRequest, "privacy: noisy value out of range")
	// ErrRandomness means the random source failed: a read error, or
	// output so improbable that the source is taken to be broken (a
	// sampler ran past its iteration bound).
	ErrRandomness = fault.New(ErrPrivacy, fault.Internal, "privacy: random source failed")
	// ErrCorruptState means a Store holds a state no sequence of
	// reservations could produce (a negative amount).
	ErrCorruptState = fault.New(ErrPrivacy, fault.Internal, "privacy: corrupt budget state")
)
