package appraisal

import (
	"context"
	"strings"
	"testing"

	"github.com/veraison/ear"
)

// kernelDigest is the SHA-384 of the kernel event in tdxEventClaims.
var kernelDigest = strings.Repeat("cd", 48)

// tdxEventClaims returns tdx claims with a replayed CCEL log: an
// EV_EFI_ACTION on RTMR0 (MR index 1) and the kernel on RTMR1 (MR index 2).
func tdxEventClaims() map[string]any {
	c := tdxClaims("UpToDate")
	tdx := c["tdx"].(map[string]any)
	tdx["events"] = []any{
		map[string]any{"source": "ccel", "pcr": 1, "rtmr": 0, "type": "EV_EFI_ACTION", "digests": map[string]any{"sha384": strings.Repeat("01", 48)}, "description": "Exit Boot Services Invocation", "data_verified": true},
		map[string]any{"source": "ccel", "pcr": 2, "rtmr": 1, "type": "EV_EFI_BOOT_SERVICES_APPLICATION", "digests": map[string]any{"sha384": kernelDigest}, "description": "vmlinuz", "data_verified": false},
	}
	tdx["replayed_rtmrs"] = []any{"rtmr0", "rtmr1", "rtmr2", "rtmr3"}
	tdx["unverified_events"] = 0
	return c
}

// TestAppraiseTDXEvents checks that the events reference values judge a
// tdx bundle's replayed CCEL log as they judge tpm's logs, and that a tdx
// bundle without a log cannot satisfy a required event.
func TestAppraiseTDXEvents(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		claims     map[string]any
		ref        string
		wantStatus ear.TrustTier
		failed     string
		detail     string
	}{
		{"no reference values", tdxEventClaims(), "", ear.TrustTierAffirming, "", ""},
		{"required kernel", tdxEventClaims(), "events: {required: [{digest: " + kernelDigest + ", pcr: 2}]}\n", ear.TrustTierAffirming, "", ""},
		{"required kernel, no log", tdxClaims("UpToDate"), "events: {required: [{digest: " + kernelDigest + "}]}\n", ear.TrustTierWarning, "required events", kernelDigest},
		{"required on another register", tdxEventClaims(), "events: {required: [{digest: " + kernelDigest + ", pcr: 3}]}\n", ear.TrustTierWarning, "required events", kernelDigest},
		{"unbound description", tdxEventClaims(), "events: {required: [{name: vmlinuz}]}\n", ear.TrustTierWarning, "required events", "vmlinuz"},
		{"bound description", tdxEventClaims(), "events: {required: [{name: Exit Boot Services Invocation, pcr: 1}]}\n", ear.TrustTierAffirming, "", ""},
		{"forbidden present", tdxEventClaims(), "events: {forbidden: [{digest: " + kernelDigest + "}]}\n", ear.TrustTierWarning, "forbidden events", "RTMR1 EV_EFI_BOOT_SERVICES_APPLICATION vmlinuz"},
		{"forbidden absent", tdxEventClaims(), "events: {forbidden: [{digest: " + strings.Repeat("ee", 48) + "}]}\n", ear.TrustTierAffirming, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(ctx, Config{Reference: reference(t, tt.ref)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Appraise(ctx, tt.claims)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.wantStatus {
				t.Errorf("status = %v, want %v; checks %+v", got.Status, tt.wantStatus, got.Checks)
			}
			var failed []string
			for _, c := range got.Checks {
				if c.Status == "failed" {
					failed = append(failed, c.Name)
					if !strings.Contains(c.Detail, tt.detail) {
						t.Errorf("check %s: detail %q does not name %q", c.Name, c.Detail, tt.detail)
					}
				}
			}
			if want := tt.failed; (want == "" && len(failed) > 0) || (want != "" && (len(failed) != 1 || failed[0] != want)) {
				t.Errorf("failed checks = %v, want [%s]", failed, want)
			}
		})
	}
}
