package appraisal

import (
	"context"
	"strings"
	"testing"

	"github.com/veraison/ear"
)

// TestAppraiseDevices checks how a composite bundle's devices, appraised
// on their own, weigh on the primary appraisal, and the required-devices
// reference values.
func TestAppraiseDevices(t *testing.T) {
	ctx := context.Background()
	withDevices := func(devs map[string]any) map[string]any {
		c := snpClaims()
		c["devices"] = devs
		return c
	}
	gpu := func(status string, failed ...any) map[string]any {
		return map[string]any{"tee": "nvidia", "status": status, "failed_checks": append([]any{}, failed...)}
	}
	requireGPU := "devices: {required: [{name: gpu0, tee: nvidia}]}\n"
	for _, tc := range []struct {
		name   string
		claims map[string]any
		ref    string
		want   ear.TrustTier
		failed string
		detail string
	}{
		{"no devices", snpClaims(), "", ear.TrustTierAffirming, "", ""},
		{"affirming gpu", withDevices(map[string]any{"gpu0": gpu("affirming")}), requireGPU, ear.TrustTierAffirming, "", ""},
		{"warning gpu", withDevices(map[string]any{"gpu0": gpu("warning", "measurement: not listed")}), "", ear.TrustTierWarning, "device gpu0", "nvidia evidence appraised warning: measurement: not listed"},
		{"contraindicated gpu", withDevices(map[string]any{"gpu0": gpu("contraindicated", "cc mode: off")}), "", ear.TrustTierContraindicated, "device gpu0", "cc mode: off"},
		{"required gpu missing", snpClaims(), requireGPU, ear.TrustTierContraindicated, "required devices", "no verified evidence of gpu0 (nvidia)"},
		{"required gpu of another type", withDevices(map[string]any{"gpu0": map[string]any{"tee": "tpm", "status": "affirming", "failed_checks": []any{}}}), requireGPU, ear.TrustTierContraindicated, "required devices", "gpu0 (nvidia)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(ctx, Config{Reference: reference(t, tc.ref)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Appraise(ctx, tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want {
				t.Errorf("status = %v, want %v; checks %+v", got.Status, tc.want, got.Checks)
			}
			var failed []string
			for _, c := range got.Checks {
				if c.Status == "failed" {
					failed = append(failed, c.Name)
					if !strings.Contains(c.Detail, tc.detail) {
						t.Errorf("check %s: %q does not name %q", c.Name, c.Detail, tc.detail)
					}
				}
			}
			if (tc.failed == "") != (len(failed) == 0) || (tc.failed != "" && (len(failed) != 1 || failed[0] != tc.failed)) {
				t.Errorf("failed checks = %v, want [%s]", failed, tc.failed)
			}
		})
	}
	if _, err := ParseReferenceValues([]byte("devices: {required: [{name: gpu0}]}\n")); err == nil {
		t.Error("a required device without its tee was accepted")
	}
}
