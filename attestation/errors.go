package attestation

import "errors"

// Sentinel errors shared by every TEE verifier. Callers test them with
// errors.Is; the CLI maps them to exit codes and the HTTP API to problem types.
var (
	// ErrMalformed means the evidence could not be parsed: truncated,
	// oversized, wrong version or wrong TEE type.
	ErrMalformed = errors.New("malformed evidence")
	// ErrBadSignature means a signature over the evidence or a certificate
	// in its chain did not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrUntrustedRoot means the certificate chain does not end at a trusted
	// vendor root (AMD ARK, Intel SGX root, or the configured sim key).
	ErrUntrustedRoot = errors.New("untrusted root")
	// ErrCollateralUnavailable means certificates, TCB info or CRLs needed
	// for verification could not be found offline or fetched.
	ErrCollateralUnavailable = errors.New("collateral unavailable")
	// ErrCollateralExpired means collateral or a certificate was outside its
	// validity period at the verification time.
	ErrCollateralExpired = errors.New("collateral expired")
	// ErrBinding means the hardware report_data does not match the bundle's
	// runtime data and nonce.
	ErrBinding = errors.New("report data does not bind the runtime data")
	// ErrNonce means the nonce is unknown, expired or already used.
	ErrNonce = errors.New("invalid nonce")
	// ErrPolicyDenied means the evidence verified but the appraisal policy
	// did not affirm it.
	ErrPolicyDenied = errors.New("policy denied")
	// ErrNoTEE means no supported TEE interface was found on this machine.
	ErrNoTEE = errors.New("no TEE found")
)
