package attestation

import (
	"errors"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrAttestation is the family of this package's sentinels: every one
// below wraps it, and carries its kind of failure (internal/fault), by which
// the CLI picks an exit code and the HTTP API a status.
var ErrAttestation = errors.New("attestation failed")

// Sentinel errors shared by every TEE verifier. Callers test them with
// errors.Is; the codes in quotes are the problem types of docs/spec/attestation.md §8.
var (
	// ErrMalformed means the evidence could not be parsed: truncated,
	// oversized, wrong version or wrong TEE type ("malformed-evidence").
	ErrMalformed = fault.NewCode(ErrAttestation, fault.Malformed, "malformed-evidence", "malformed evidence")
	// ErrBadSignature means a signature over the evidence or a certificate
	// in its chain did not verify ("bad-signature").
	ErrBadSignature = fault.New(ErrAttestation, fault.BadSignature, "bad signature")
	// ErrUntrustedRoot means the certificate chain does not end at a trusted
	// vendor root (AMD ARK, Intel SGX root, or the configured sim key)
	// ("untrusted-root").
	ErrUntrustedRoot = fault.NewCode(ErrAttestation, fault.Untrusted, "untrusted-root", "untrusted root")
	// ErrCollateralUnavailable means certificates, TCB info or CRLs needed
	// for verification could not be found offline or fetched
	// ("collateral-unavailable"; its detail, which may name URLs and local
	// paths, is logged, not sent).
	ErrCollateralUnavailable = fault.NewCode(ErrAttestation, fault.Unavailable, "collateral-unavailable", "collateral unavailable")
	// ErrCollateralExpired means collateral or a certificate was outside its
	// validity period at the verification time ("collateral-expired").
	ErrCollateralExpired = fault.NewCode(ErrAttestation, fault.Expired, "collateral-expired", "collateral expired")
	// ErrBinding means the hardware report_data does not match the bundle's
	// runtime data and nonce ("binding-mismatch").
	ErrBinding = fault.NewCode(ErrAttestation, fault.BadSignature, "binding-mismatch", "report data does not bind the runtime data")
	// ErrNonce means the nonce is unknown, expired or already used
	// ("invalid-nonce").
	ErrNonce = fault.NewCode(ErrAttestation, fault.Stale, "invalid-nonce", "invalid nonce")
	// ErrPolicyDenied means the evidence verified but the appraisal policy
	// did not affirm it.
	ErrPolicyDenied = fault.New(ErrAttestation, fault.Denied, "policy denied")
	// ErrNoTEE means no supported TEE interface was found on this machine
	// (an Internal failure: the machine's, not the caller's).
	ErrNoTEE = fault.New(ErrAttestation, fault.Internal, "no TEE found")
)
