package collab

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrCollab is the family of this package's sentinels: every one wraps it
// and carries its kind of failure (internal/fault). A collaboration file
// that does not parse is Invalid, like an invalid manifest; a broken chain
// is a BadSignature, as a bad approval is.
var ErrCollab = errors.New("collaboration failed")

// Sentinel errors. Errors returned by this package wrap one of them; test
// with errors.Is.
var (
	// ErrInvalidManifest means a manifest is malformed or inconsistent: bad
	// YAML or JSON, an unknown key, a reference to something that does not
	// exist, or an analysis its owners' output policies forbid. The message
	// names the path of the offending value.
	ErrInvalidManifest = fault.New(ErrCollab, fault.Invalid, "collab: invalid manifest")
	// ErrMalformedCollaboration means a collaboration file cannot be parsed
	// or is not in normal form.
	ErrMalformedCollaboration = fault.New(ErrCollab, fault.Invalid, "collab: malformed collaboration file")
	// ErrBrokenChain means the manifest history is not a hash chain: a
	// version's previous hash or id does not follow from the version before.
	ErrBrokenChain = fault.New(ErrCollab, fault.BadSignature, "collab: broken manifest chain")
	// ErrBadApproval means an approval is invalid: its signature does not
	// verify under the party's card, or it names the wrong manifest, scope,
	// version or party.
	ErrBadApproval = fault.New(ErrCollab, fault.BadSignature, "collab: bad approval")
	// ErrNotApproved means a party's approval does not cover the current
	// manifest: it never approved, or its approval is stale.
	ErrNotApproved = fault.New(ErrCollab, fault.Denied, "collab: not approved")
	// ErrNotReviewed means a party was asked to approve a manifest other
	// than the one it reviewed: the current version's hash is not the hash
	// it gave (kura collab approve --hash).
	ErrNotReviewed = fault.New(ErrCollab, fault.Denied, "collab: not the manifest reviewed")
)

// NotApprovedError says why a party's approval does not cover a version.
// It wraps ErrNotApproved, or ErrBadApproval when the party's only
// approvals do not verify.
type NotApprovedError struct {
	Party string // the party's name
	// Version is the version whose approval is missing.
	Version int
	// Approved is the latest version the party validly approved, 0 if none.
	Approved int
	// StaleSince is the first version after Approved that changed what the
	// party approved (0 when Approved is 0).
	StaleSince int
	// Changes lists what changed in StaleSince, like `dataset "passengers"`
	// or "worker reference values".
	Changes []string
	// RevokedAt is when the party revoked the approval of version
	// Approved that would cover Version (zero unless Err wraps
	// ErrRevoked).
	RevokedAt time.Time
	// Err is ErrNotApproved, an ErrBadApproval error, or an error wrapping
	// both ErrRevoked and ErrNotApproved.
	Err error
}

// Error names the party and why its approval does not count.
func (e *NotApprovedError) Error() string {
	switch {
	case errors.Is(e.Err, ErrBadApproval):
		return fmt.Sprintf("party %q has no valid approval of version %d: %v", e.Party, e.Version, e.Err)
	case errors.Is(e.Err, ErrRevoked):
		return fmt.Sprintf("%v: party %q revoked its approval (of version %d) at %s: it must approve again", ErrRevoked, e.Party, e.Approved, e.RevokedAt.UTC().Format(time.RFC3339))
	case e.Approved == 0:
		return fmt.Sprintf("%v: party %q never approved (current version %d)", e.Err, e.Party, e.Version)
	default:
		return fmt.Sprintf("%v: party %q approved version %d, stale since version %d because %s changed", e.Err, e.Party, e.Approved, e.StaleSince, strings.Join(e.Changes, ", "))
	}
}

// Unwrap returns Err.
func (e *NotApprovedError) Unwrap() error { return e.Err }
