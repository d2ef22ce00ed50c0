package auditlog

import (
	"errors"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrLog is the family of this package's sentinels: every one below wraps
// it and carries its kind of failure (internal/fault).
var ErrLog = errors.New("audit log failed")

// Sentinel errors. Verification failures wrap one of them; callers map
// them with errors.Is (the CLI maps all of them to one exit code, whatever
// their kind: see IsVerificationFailure).
var (
	// ErrMalformed means an entry, proof, checkpoint or tile could not be
	// parsed, or breaks the format's rules (unknown field or kind, not
	// canonical, too large).
	ErrMalformed = fault.New(ErrLog, fault.Malformed, "malformed")
	// ErrBadSignature means a checkpoint is not signed by the log's key, or
	// carries a signature that does not verify.
	ErrBadSignature = fault.New(ErrLog, fault.BadSignature, "bad checkpoint signature")
	// ErrInconsistent means a checkpoint does not extend one seen before:
	// the log was forked, rolled back or rewritten.
	ErrInconsistent = fault.New(ErrLog, fault.Tampered, "log is inconsistent with an earlier checkpoint")
	// ErrNotIncluded means an entry is not in the log at the claimed index,
	// or its inclusion proof does not lead to the checkpoint's root.
	ErrNotIncluded = fault.New(ErrLog, fault.BadSignature, "entry not included in the log")
	// ErrTampered means the log's entries do not hash to its signed root,
	// or some are missing: an entry was modified or removed.
	ErrTampered = fault.New(ErrLog, fault.Tampered, "log entries tampered with")
	// ErrWitness means the checkpoint lacks the required number of valid
	// witness cosignatures.
	ErrWitness = fault.New(ErrLog, fault.Untrusted, "witness cosignatures insufficient")
	// ErrClosed is returned by a Log after Close.
	ErrClosed = fault.New(ErrLog, fault.Internal, "audit log closed")
)

// IsVerificationFailure reports whether err says that the log or a proof
// failed verification (as opposed to an I/O or usage error).
func IsVerificationFailure(err error) bool {
	for _, s := range []error{ErrMalformed, ErrBadSignature, ErrInconsistent, ErrNotIncluded, ErrTampered, ErrWitness} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
