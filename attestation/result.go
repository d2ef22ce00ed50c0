package attestation

import (
	"context"
	"fmt"
	"net/http"
)

// A Getter fetches collateral (certificates, TCB info, CRLs) by the URL its
// vendor serves it at (AMD KDS, Intel PCS), from a cache, an offline bundle
// directory or the network. The header carries what the vendor sends in
// headers (Intel's issuer chains). A Getter returns an error wrapping
// ErrCollateralUnavailable when it cannot find the URL.
type Getter interface {
	Get(ctx context.Context, url string) (header http.Header, body []byte, err error)
}

// A Verifier checks one TEE's evidence: parses it, verifies its signatures
// and certificate chain up to the vendor root, checks collateral, and
// returns the claims the evidence makes. It does not judge the claims
// against reference values; that is the appraisal policy's job.
//
// On failure Verify returns the error wrapped around one of this package's
// sentinels, together with a Result holding the checks made so far (Result
// may be nil when parsing failed).
type Verifier interface {
	Verify(ctx context.Context, b *Bundle) (*Result, error)
}

// An Attester produces hardware evidence inside a TEE.
type Attester interface {
	// TEE names the TEE this attester uses.
	TEE() TEE
	// Attest returns a bundle whose evidence binds reportData. The caller
	// fills in RuntimeData.
	Attest(ctx context.Context, reportData [ReportDataSize]byte) (*Bundle, error)
}

// Result is what a TEE verifier establishes about a piece of evidence.
type Result struct {
	TEE TEE `json:"tee"`
	// ReportData is the report_data field as signed by the hardware.
	ReportData []byte `json:"report_data"`
	// Claims are the TEE's claims in JSON-friendly form (byte strings are
	// lower-case hex), the input the appraisal policy reads. The keys each
	// TEE produces are listed in docs/spec/attestation.md §5.
	Claims map[string]any `json:"claims"`
	// Checks lists what the verifier checked, in order.
	Checks []Check `json:"checks"`
}

// CheckStatus is the outcome of one check.
type CheckStatus string

// Check outcomes.
const (
	Passed  CheckStatus = "passed"
	Failed  CheckStatus = "failed"
	Skipped CheckStatus = "skipped"
)

// Check records one verification step and its outcome.
type Check struct {
	Name   string      `json:"name"`
	Status CheckStatus `json:"status"`
	Detail string      `json:"detail,omitempty"`
}

// Pass records a passed check.
func (r *Result) Pass(name, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: Passed, Detail: detail})
}

// Skip records a check that was not performed, and why.
func (r *Result) Skip(name, why string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: Skipped, Detail: why})
}

// Fail records a failed check and returns err wrapped with the check's name,
// so verifiers can write `return res, res.Fail("vcek chain", err)`.
func (r *Result) Fail(name string, err error) error {
	r.Checks = append(r.Checks, Check{Name: name, Status: Failed, Detail: err.Error()})
	return fmt.Errorf("%s: %w", name, err)
}

// Failed reports whether any check failed.
func (r *Result) Failed() bool {
	for _, c := range r.Checks {
		if c.Status == Failed {
			return true
		}
	}
	return false
}
