package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/dataset/table"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/kek"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/timelock"
	"github.com/kura-cc/kura/worker"
)

// TestExitCodes pins the documented exit code of every error the CLI tells
// apart, bare, wrapped with context, and wrapped inside the errors the
// domain packages build around them. The expected values were computed from
// the 34-branch exitCode this table replaced.
func TestExitCodes(t *testing.T) {
	sentinels := []struct {
		err  error
		code int
	}{
		{dataset.ErrWrongKey, ExitWrongKey},
		{dataset.ErrInvalidKey, ExitWrongKey},
		{result.ErrNotReceiver, ExitWrongKey},
		{timelock.ErrNotRecipient, ExitWrongKey},

		{dataset.ErrAuth, ExitDataAuth},
		{dataset.ErrTampered, ExitDataAuth},
		{dataset.ErrTruncated, ExitDataAuth},
		{dataset.ErrMalformedHeader, ExitDataAuth},
		{result.ErrTampered, ExitDataAuth},
		{worker.ErrInputMismatch, ExitDataAuth},
		{timelock.ErrTampered, ExitDataAuth},
		{timelock.ErrMalformed, ExitDataAuth},

		{result.ErrBadSignature, ExitBadEvidence},
		{result.ErrUntrusted, ExitBadEvidence},
		{result.ErrMalformed, ExitBadEvidence},
		{timelock.ErrBadBeacon, ExitBadEvidence},
		{collab.ErrBrokenChain, ExitBadEvidence},
		{collab.ErrBadApproval, ExitBadEvidence},
		{attestation.ErrBadSignature, ExitBadEvidence},
		{attestation.ErrUntrustedRoot, ExitBadEvidence},
		{attestation.ErrMalformed, ExitBadEvidence},
		{attestation.ErrBinding, ExitBadEvidence},

		{worker.ErrRefused, ExitPolicy},
		{collab.ErrNotApproved, ExitPolicy},
		{collab.ErrNotReviewed, ExitPolicy},
		{attestation.ErrPolicyDenied, ExitPolicy},
		{attestation.ErrNonce, ExitPolicy},

		{timelock.ErrTooEarly, ExitTooEarly},
		{&timelock.TooEarlyError{Round: 7}, ExitTooEarly},

		{timelock.ErrBadTime, ExitUsage},
		{timelock.ErrWrongChain, ExitUsage},
		{timelock.ErrInsecureBeacon, ExitUsage},
		{server.ErrConfig, ExitUsage},
		{usagef("--flag: bad"), ExitUsage},
		{errors.New(`unknown flag: --nope`), ExitUsage},

		{timelock.ErrUnavailable, ExitCollateral},
		{attestation.ErrCollateralUnavailable, ExitCollateral},
		{attestation.ErrCollateralExpired, ExitCollateral},

		{auditlog.ErrMalformed, ExitAuditFailed},
		{auditlog.ErrBadSignature, ExitAuditFailed},
		{auditlog.ErrInconsistent, ExitAuditFailed},
		{auditlog.ErrNotIncluded, ExitAuditFailed},
		{auditlog.ErrTampered, ExitAuditFailed},
		{auditlog.ErrWitness, ExitAuditFailed},

		{table.ErrSchemaMismatch, ExitDataInvalid},
		{table.ErrMissingColumn, ExitDataInvalid},
		{collab.ErrInvalidManifest, ExitDataInvalid},
		{collab.ErrMalformedCollaboration, ExitDataInvalid},

		{errors.New("disk full"), ExitFailure},
		{auditlog.ErrClosed, ExitFailure},
	}
	for _, s := range sentinels {
		for _, err := range []error{s.err, fmt.Errorf("context: %w", s.err), fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", s.err))} {
			if got := exitCode(err); got != s.code {
				t.Errorf("exitCode(%q) = %d, want %d", err, got, s.code)
			}
		}
	}

	// Errors as the domain packages build them: the outer sentinel decides.
	composite := []struct {
		name string
		err  error
		code int
	}{
		{"result untrusted over unavailable collateral", fmt.Errorf("%w: evidence: %w", result.ErrUntrusted, attestation.ErrCollateralUnavailable), ExitBadEvidence},
		{"result malformed over a log proof", fmt.Errorf("%w: log proof: %w", result.ErrMalformed, auditlog.ErrNotIncluded), ExitBadEvidence},
		{"result tampered", fmt.Errorf("%w: decrypt b's copy: %w", result.ErrTampered, errors.New("party: decryption failed")), ExitDataAuth},
		{"worker refused over bad evidence", fmt.Errorf("%w: dataset %q: attest: %w", worker.ErrRefused, "d", attestation.ErrBadSignature), ExitPolicy},
		{"cli not approved", fmt.Errorf("%w: %w: a, b", errPolicy, collab.ErrNotApproved), ExitPolicy},
		{"not approved error", &collab.NotApprovedError{Party: "a", Version: 2, Err: collab.ErrNotApproved}, ExitPolicy},
		{"not approved, bad approval", &collab.NotApprovedError{Party: "a", Version: 2, Err: fmt.Errorf("%w: sig", collab.ErrBadApproval)}, ExitBadEvidence},
		{"malformed collaboration over a broken chain", fmt.Errorf("%w: versions[1]: %w", collab.ErrMalformedCollaboration, collab.ErrBrokenChain), ExitDataInvalid},
		{"timelock tampered header", fmt.Errorf("%w: header: %w", timelock.ErrTampered, errors.New("unexpected EOF")), ExitDataAuth},
		{"timelock malformed chain info", fmt.Errorf("%w: chain info: %w", timelock.ErrMalformed, errors.New("bad json")), ExitDataAuth},
		{"schema mismatch from a Parquet file", fmt.Errorf("%w: not a readable Parquet file: %w", table.ErrSchemaMismatch, errors.New("x")), ExitDataInvalid},
		{"collateral unavailable from a directory", fmt.Errorf("%w: https://kdsintf.amd.com/x: in /var/cache: %w", attestation.ErrCollateralUnavailable, errors.New("no such file")), ExitCollateral},
		{"usage error hides its cause", usagef("--log x: %w", auditlog.ErrMalformed), ExitUsage},
		{"usage error hiding malformed evidence", usageError{fmt.Errorf("collateral: %w", attestation.ErrMalformed)}, ExitUsage},
		{"joined", errors.Join(dataset.ErrWrongKey, errors.New("x")), ExitWrongKey},
	}
	for _, c := range composite {
		if got := exitCode(c.err); got != c.code {
			t.Errorf("%s: exitCode(%q) = %d, want %d", c.name, c.err, got, c.code)
		}
	}
}

// TestExitCodesByKind: the table covers every kind, and sentinels the
// 34-branch exitCode did not list follow their kind (those with a specific
// code gained it with the table; the rest still exit 1).
func TestExitCodesByKind(t *testing.T) {
	if len(exitCodes) != len(fault.Kinds()) {
		t.Fatalf("%d exit codes for %d kinds", len(exitCodes), len(fault.Kinds()))
	}
	for _, c := range []struct {
		err  error
		code int
	}{
		{party.ErrBadSignature, ExitBadEvidence},
		{party.ErrMalformedCard, ExitBadEvidence},
		{party.ErrDecrypt, ExitDataAuth},
		{party.ErrMalformedIdentity, ExitWrongKey},
		{party.ErrInvalidName, ExitUsage},
		{kek.ErrWrongPassphrase, ExitWrongKey},
		{store.ErrInvalid, ExitDataInvalid},
		{collab.ErrBadRunContext, ExitBadEvidence},
		{store.ErrNotFound, ExitFailure},
		{store.ErrConflict, ExitFailure},
		{keybroker.ErrUnauthenticated, ExitFailure},
		{dataset.ErrUnsupportedVersion, ExitDataAuth},
		{attestation.ErrNoTEE, ExitFailure},
		{fmt.Errorf("fetch: %w", fault.Unavailable), ExitCollateral},
	} {
		if got := exitCode(fmt.Errorf("x: %w", c.err)); got != c.code {
			t.Errorf("exitCode(%q) = %d, want %d", c.err, got, c.code)
		}
	}
}

// TestUsageHint: only errors in how kura was invoked point to --help; a
// failure while running does not, even one of kind fault.BadRequest (a
// server refusing a request), which keeps its documented exit code.
func TestUsageHint(t *testing.T) {
	for _, c := range []struct {
		args []string
		hint bool
		code int
	}{
		{[]string{"collab", "status"}, true, ExitUsage},                      // cobra: wrong number of arguments
		{[]string{"collab", "status", "--nosuchflag", "x"}, true, ExitUsage}, // cobra: unknown flag
		{[]string{"collab", "nosuchcommand"}, true, ExitUsage},               // a group refuses an unknown subcommand
		{[]string{"collab", "status", "missing.json"}, true, ExitUsage},      // usagef: the file named does not exist
	} {
		var stderr strings.Builder
		code := Run(t.Context(), c.args, Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr})
		if code != c.code || strings.Contains(stderr.String(), "kura --help") != c.hint {
			t.Errorf("%v: exit %d, stderr %q; want exit %d, hint %v", c.args, code, stderr.String(), c.code, c.hint)
		}
	}
	for _, err := range []error{
		fmt.Errorf("coordinator: %w", keybroker.ErrBadRequest),
		fmt.Errorf("verify: %w", attestation.ErrBadSignature),
		errors.New("dial tcp: connection refused"),
	} {
		if isUsage(err) {
			t.Errorf("%v: runtime error taken for a usage error", err)
		}
	}
	if !isUsage(fmt.Errorf("flag: %w", usagef("--x: bad"))) {
		t.Error("a wrapped usage error is not one")
	}
}
