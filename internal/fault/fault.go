// Package fault names the kinds of failure that every kura domain shares
// (malformed input, a bad signature, tampered data, a policy refusal, an
// unavailable dependency...), so that each edge translates an error once, by
// its kind, instead of listing every package's sentinels: the HTTP adapter
// (internal/web) maps a kind to a status and a problem type, the CLI maps it
// to an exit code.
//
// A domain package declares a root error for its family and sentinels made
// with New, each wrapping the root and carrying its kind:
//
//	ErrAttestation = errors.New("attestation failed")
//	ErrMalformed   = fault.NewCode(ErrAttestation, fault.Malformed, "malformed-evidence", "malformed evidence")
//
// errors.Is(err, attestation.ErrMalformed), errors.Is(err, attestation.ErrAttestation) and
// errors.Is(err, fault.Malformed) all hold for an error wrapping that
// sentinel; fault.KindOf(err) is Malformed. When an error wraps several
// classified errors ("%w: %w"), the first one found (the outermost, as
// errors.As walks the tree) decides: a key broker's ErrUnauthenticated
// wrapping a bad signature is a 401, not a 422.
package fault

import (
	"errors"
	"strconv"
)

// Kind is a kind of failure. A Kind is itself an error, so code without a
// sentinel of its own can wrap one: fmt.Errorf("%w: ...", fault.Conflict).
type Kind uint8

// The kinds. Each edge documents what it makes of them; the comments say
// what the CLI (exit code) and the HTTP API (status) answer by default.
const (
	// Internal is the zero Kind: a failure that is not the caller's, or
	// not classified (exit 1, 500).
	Internal Kind = iota
	// Malformed input does not parse: truncated, oversized, a wrong
	// version or type, unknown fields (exit 3, 400).
	Malformed
	// Invalid input parses but breaks the rules of its format: an
	// inconsistent manifest, input that does not match its schema, a
	// collaboration file not in normal form (exit 8, 400).
	Invalid
	// BadRequest means the request or command asks for something that
	// cannot be done as asked: a bad argument, a release time in the past,
	// another chain than the configured one (exit 2, 400).
	BadRequest
	// Unsupported input is well formed but uses a version, algorithm or
	// feature this build does not implement (exit 1, 400).
	Unsupported
	// BadSignature means a signature, certificate chain or cryptographic
	// binding does not verify (exit 3, 422).
	BadSignature
	// Untrusted means what verified does not lead to a root, producer or
	// quorum the verifier trusts (exit 3, 422).
	Untrusted
	// Tampered means authenticated data was modified, truncated or
	// damaged: it no longer authenticates (exit 6, 422).
	Tampered
	// WrongKey means a key does not fit (a wrong data key, not a recipient)
	// or a key file is unusable (malformed, unsafe permissions, a wrong
	// passphrase) (exit 7; 500 on a server, whose keys are its operator's
	// concern).
	WrongKey
	// Expired means collateral or a credential is outside its validity
	// period at the verification time (exit 4, 422).
	Expired
	// Stale means a nonce or challenge is unknown, expired or already
	// used: a freshness failure (exit 5, 400).
	Stale
	// Denied means a policy refused: an appraisal, a release or output
	// policy, missing approvals (exit 5, 403).
	Denied
	// Unauthenticated means the caller did not prove who or what it is
	// (exit 1, 401).
	Unauthenticated
	// NotFound means the thing asked for does not exist (exit 1, 404).
	NotFound
	// Conflict means the request conflicts with the current state: a
	// concurrent update, a duplicate, a removal that is not allowed (exit
	// 1, 409).
	Conflict
	// Unavailable means a dependency (collateral source, beacon, store)
	// could not be reached; retry later (exit 4, 503 with Retry-After).
	Unavailable
	// Busy means the server is at one of its bounds; retry shortly (exit
	// 1, 503 with Retry-After).
	Busy
	// RateLimited means this client sent too many requests (exit 1, 429).
	RateLimited
	// TooEarly means something was asked for before its release time
	// (exit 10, 403).
	TooEarly

	numKinds
)

var kindNames = [numKinds]string{
	Internal: "internal", Malformed: "malformed", Invalid: "invalid", BadRequest: "bad request",
	Unsupported: "unsupported", BadSignature: "bad signature", Untrusted: "untrusted", Tampered: "tampered",
	WrongKey: "wrong key", Expired: "expired", Stale: "stale", Denied: "denied",
	Unauthenticated: "unauthenticated", NotFound: "not found", Conflict: "conflict",
	Unavailable: "unavailable", Busy: "busy", RateLimited: "rate limited", TooEarly: "too early",
}

// Kinds returns every kind, Internal first.
func Kinds() []Kind {
	ks := make([]Kind, numKinds)
	for i := range ks {
		ks[i] = Kind(i)
	}
	return ks
}

// String returns the kind's name ("malformed", "bad signature"...).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error returns the kind's name, so that a Kind can be wrapped with %w.
func (k Kind) Error() string { return k.String() }

func (k Kind) class() (Kind, string) { return k, "" }

// classified is implemented by the errors this package makes, and by Kind.
type classified interface {
	error
	class() (Kind, string)
}

// sentinel is a domain sentinel: its own text, a kind, an optional stable
// code, and the root error of its family.
type sentinel struct {
	text   string
	kind   Kind
	code   string
	family error
}

func (s *sentinel) Error() string { return s.text }

// Unwrap returns the kind, then the family: errors.Is matches both.
func (s *sentinel) Unwrap() []error {
	if s.family == nil {
		return []error{s.kind}
	}
	return []error{s.kind, s.family}
}

func (s *sentinel) class() (Kind, string) { return s.kind, s.code }

// New returns a sentinel error whose Error is text, of the given kind, in
// family (the root error its package declares; nil for a package whose only
// sentinel is its family). errors.Is matches the sentinel, its kind and its
// family.
func New(family error, kind Kind, text string) error {
	return &sentinel{text: text, kind: kind, family: family}
}

// NewCode is New for a sentinel with a stable code of its own: the problem
// type slug an HTTP API answers with when it differs from its kind's
// ("malformed-evidence" rather than "bad-request"). A code is part of a wire
// format; never change one.
func NewCode(family error, kind Kind, code, text string) error {
	return &sentinel{text: text, kind: kind, code: code, family: family}
}

// Sentinel returns the classified error that decides err's kind: the first
// sentinel made by New or NewCode, or Kind, that errors.As finds in err's
// tree (the outermost). It returns nil when err carries no kind.
func Sentinel(err error) error {
	var c classified
	if errors.As(err, &c) {
		return c
	}
	return nil
}

// KindOf returns the kind of err's Sentinel, or Internal when it has none.
func KindOf(err error) Kind {
	var c classified
	if errors.As(err, &c) {
		k, _ := c.class()
		return k
	}
	return Internal
}

// CodeOf returns the stable code of err's Sentinel, or "" when it has none
// of its own (its kind's default applies).
func CodeOf(err error) string {
	var c classified
	if errors.As(err, &c) {
		_, code := c.class()
		return code
	}
	return ""
}
