package trust

import (
	"errors"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrTrust is the family of this package's errors.
var ErrTrust = errors.New("inference gateway trust")

var (
	// ErrMalformed means a document, approval or policy could not be
	// parsed.
	ErrMalformed = fault.New(ErrTrust, fault.Malformed, "malformed")
	// ErrUntrusted means the gateway is not one the policy trusts: its
	// token, keys, measurement, GPU evidence or build approval failed a
	// check. Nothing is sent to such a gateway.
	ErrUntrusted = fault.New(ErrTrust, fault.Untrusted, "gateway not trusted")
)
