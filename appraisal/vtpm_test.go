package appraisal

import (
	"context"
	"strings"
	"testing"

	"github.com/veraison/ear"
)

// azureClaims returns az-snp-vtpm or az-tdx-vtpm claims: the hardware
// claims of family with the Azure TEE name and the vTPM's PCRs.
func azureClaims(tee string) map[string]any {
	c := snpClaims()
	if tee == "az-tdx-vtpm" {
		c = tdxClaims("UpToDate")
	}
	c["tee"] = tee
	c["vtpm"] = map[string]any{"pcrs": map[string]any{"sha256": map[string]any{"7": strings.Repeat("07", 32)}}}
	return c
}

// TestAppraiseAzure checks that the Azure vTPM TEEs are judged by their
// hardware family's rules and by vtpm.pcrs reference values.
func TestAppraiseAzure(t *testing.T) {
	ctx := context.Background()
	pcr7 := "vtpm:\n  pcrs:\n    sha256:\n      \"7\": [" + strings.Repeat("07", 32) + "]\n"
	tests := []struct {
		name       string
		claims     map[string]any
		ref        string
		wantStatus ear.TrustTier
		failed     string
	}{
		{"snp affirmed", azureClaims("az-snp-vtpm"), pcr7, ear.TrustTierAffirming, ""},
		{"snp tcb below minimum", azureClaims("az-snp-vtpm"), "snp: {min_tcb: {snp: 9}}\n", ear.TrustTierContraindicated, "snp minimum tcb"},
		{"snp wrong vmpl", azureClaims("az-snp-vtpm"), "snp: {vmpl: [1]}\n", ear.TrustTierContraindicated, "snp vmpl"},
		{"pcr not allowed", azureClaims("az-snp-vtpm"), strings.ReplaceAll(pcr7, "07", "08"), ear.TrustTierWarning, "vtpm pcr sha256:7"},
		{"pcr not quoted", azureClaims("az-snp-vtpm"), strings.ReplaceAll(pcr7, `"7"`, `"8"`), ear.TrustTierWarning, "vtpm pcr sha256:8"},
		{"measurement of another tee", azureClaims("az-snp-vtpm"), "measurements:\n  - {tee: snp, name: w, value: " + measurement + "}\n", ear.TrustTierAffirming, ""},
		{"measurement unknown", azureClaims("az-snp-vtpm"), "measurements:\n  - {tee: az-snp-vtpm, name: paravisor, value: " + strings.Repeat("0", 96) + "}\n", ear.TrustTierWarning, "measurement"},
		{"tdx up to date", azureClaims("az-tdx-vtpm"), pcr7, ear.TrustTierAffirming, ""},
		{"tdx no tcb status", func() map[string]any { c := azureClaims("az-tdx-vtpm"); c["tcb_status"] = ""; return c }(), "", ear.TrustTierContraindicated, "tdx tcb status"},
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
				}
			}
			if want := tt.failed; (want == "" && len(failed) > 0) || (want != "" && (len(failed) != 1 || failed[0] != want)) {
				t.Errorf("failed checks = %v, want [%s]", failed, want)
			}
		})
	}
}

// TestVTPMReferenceValues checks the vtpm section's validation.
func TestVTPMReferenceValues(t *testing.T) {
	rv, err := ParseReferenceValues([]byte("vtpm:\n  pcrs:\n    sha256:\n      \"7\": [" + strings.Repeat("AB", 32) + "]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rv.VTPM.PCRs["sha256"]["7"][0]; got != strings.Repeat("ab", 32) {
		t.Errorf("value not lower-cased: %s", got)
	}
	for name, doc := range map[string]string{
		"unknown bank":  "vtpm: {pcrs: {md5: {\"7\": [00]}}}",
		"index 24":      "vtpm: {pcrs: {sha256: {\"24\": [" + strings.Repeat("00", 32) + "]}}}",
		"index 07":      "vtpm: {pcrs: {sha256: {\"07\": [" + strings.Repeat("00", 32) + "]}}}",
		"short value":   "vtpm: {pcrs: {sha256: {\"7\": [" + strings.Repeat("00", 20) + "]}}}",
		"not hex":       "vtpm: {pcrs: {sha256: {\"7\": [" + strings.Repeat("zz", 32) + "]}}}",
		"unknown field": "vtpm: {pcr: {}}",
		"unknown tee":   "measurements:\n  - {tee: az-vtpm, name: x, value: " + measurement + "}\n",
	} {
		if _, err := ParseReferenceValues([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
