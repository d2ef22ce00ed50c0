package timelock

import (
	"errors"
	"fmt"
	"time"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrTimelock is the family of this package's sentinels: every one below
// wraps it and carries its kind of failure (internal/fault).
var ErrTimelock = errors.New("time lock failed")

// Sentinel errors. Wrapped errors carry the detail (chain hash, URL, time).
var (
	// ErrTooEarly means the release round has not been published yet.
	// The error is a *TooEarlyError carrying the release time.
	ErrTooEarly = fault.New(ErrTimelock, fault.TooEarly, "timelock: too early to open")
	// ErrNotRecipient means a file sealed to recipients was opened without
	// the identity of one of them.
	ErrNotRecipient = fault.New(ErrTimelock, fault.WrongKey, "timelock: not a recipient of this file")
	// ErrTampered means a sealed file failed authentication: its header,
	// a wrapped key or its payload was modified, or it is truncated.
	ErrTampered = fault.New(ErrTimelock, fault.Tampered, "timelock: sealed file was modified or is truncated")
	// ErrMalformed means the input is not a time-locked file this package
	// reads, or a registration that does not parse.
	ErrMalformed = fault.New(ErrTimelock, fault.Malformed, "timelock: malformed input")
	// ErrWrongChain means a file, a beacon or a chain info names another
	// chain than the one configured.
	ErrWrongChain = fault.New(ErrTimelock, fault.BadRequest, "timelock: wrong beacon chain")
	// ErrBadTime means a release time that is in the past, too far ahead, or
	// beyond what round numbers represent.
	ErrBadTime = fault.New(ErrTimelock, fault.BadRequest, "timelock: bad release time")
	// ErrInsecureBeacon means the chain is a kura dev beacon, refused unless
	// insecure beacons are allowed.
	ErrInsecureBeacon = fault.New(ErrTimelock, fault.BadRequest, "timelock: chain is an INSECURE dev beacon")
	// ErrUnavailable means no URL of the chain answered.
	ErrUnavailable = fault.New(ErrTimelock, fault.Unavailable, "timelock: beacon unavailable")
	// ErrBadBeacon means a beacon signature that does not verify under the
	// chain's public key.
	ErrBadBeacon = fault.New(ErrTimelock, fault.BadSignature, "timelock: beacon signature does not verify")
)

// TooEarlyError is the error of opening a file before its release round.
// errors.Is(err, ErrTooEarly) matches it; errors.As gives the times.
type TooEarlyError struct {
	// Round is the release round.
	Round uint64
	// ReleaseTime is when the chain publishes Round.
	ReleaseTime time.Time
	// Now is the clock reading the decision was made at.
	Now time.Time
}

// Remaining returns how long until the release time.
func (e *TooEarlyError) Remaining() time.Duration { return e.ReleaseTime.Sub(e.Now) }

// Error names the release time and how long remains.
func (e *TooEarlyError) Error() string {
	rem := e.Remaining()
	if rem < 0 {
		rem = 0
	}
	return fmt.Sprintf("%v: released at %s (round %d), %s from now", ErrTooEarly,
		e.ReleaseTime.UTC().Format(time.RFC3339), e.Round, roundDuration(rem))
}

// Unwrap returns ErrTooEarly.
func (e *TooEarlyError) Unwrap() error { return ErrTooEarly }

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d > time.Hour:
		return d.Round(time.Minute)
	case d > time.Second:
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}
