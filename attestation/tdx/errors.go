package tdx

import (
	"fmt"

	"github.com/kura-cc/kura/attestation"
)

// Errors for TCB levels that fail verification outright rather than being
// reported to the policy. Both wrap attestation.ErrUntrustedRoot: Intel does
// not vouch for the platform's TCB, so nothing the quote says can be trusted.
var (
	// ErrTCBRevoked means the platform, TDX module or QE TCB level matching
	// the quote has status Revoked.
	ErrTCBRevoked = fmt.Errorf("%w: tdx tcb level is revoked", attestation.ErrUntrustedRoot)
	// ErrTCBNotSupported means no TCB level in the TCB info or QE identity
	// matches the quote: Intel's algorithm calls such a TCB unsupported.
	ErrTCBNotSupported = fmt.Errorf("%w: no tdx tcb level matches the platform", attestation.ErrUntrustedRoot)
)
