package appraisal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/veraison/ear"
)

const measurement = "aa5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5aaa"

func snpClaims() map[string]any {
	return map[string]any{
		"tee": "snp", "measurement": measurement, "debug": false, "report_data": "00", "insecure": false,
		"platform_id": "c0ffee",
		"snp": map[string]any{
			"vmpl": 0, "host_data": "00",
			"reported_tcb": map[string]any{"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115, "fmc": 0},
		},
	}
}

func tdxClaims(status string) map[string]any {
	tdx := map[string]any{"mr_seam": "5e", "xfam": "e7", "td_attributes": "00", "mr_config_id": "00", "mr_owner": "00"}
	for _, r := range []string{"rtmr0", "rtmr1", "rtmr2", "rtmr3"} {
		tdx[r] = "00"
	}
	return map[string]any{"tee": "tdx", "measurement": measurement, "debug": false, "report_data": "00", "insecure": false, "tcb_status": status, "tdx": tdx}
}

func simClaims() map[string]any {
	return map[string]any{"tee": "sim", "measurement": measurement, "debug": false, "report_data": "00", "insecure": true}
}

func reference(t *testing.T, yamlText string) *ReferenceValues {
	t.Helper()
	rv, err := ParseReferenceValues([]byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

const refYAML = `
measurements:
  - {tee: snp, name: kura-worker, version: "0.1.0", value: ` + measurement + `}
  - {tee: tdx, name: kura-worker, version: "0.1.0", value: ` + measurement + `}
snp:
  min_tcb: {bootloader: 3, tee: 0, snp: 8, microcode: 115}
  vmpl: [0]
`

func TestAppraise(t *testing.T) {
	ctx := context.Background()
	mod := func(c map[string]any, f func(map[string]any)) map[string]any { f(c); return c }
	tests := []struct {
		name       string
		claims     map[string]any
		ref        string
		dev        bool
		wantStatus ear.TrustTier
		failed     string // name of the check that must fail, "" for none
	}{
		{"snp affirmed", snpClaims(), refYAML, false, ear.TrustTierAffirming, ""},
		{"snp no reference values", snpClaims(), "", false, ear.TrustTierAffirming, ""},
		{"snp unknown measurement", mod(snpClaims(), func(c map[string]any) { c["measurement"] = strings.Repeat("0", 96) }), refYAML, false, ear.TrustTierWarning, "measurement"},
		{"snp debug", mod(snpClaims(), func(c map[string]any) { c["debug"] = true }), refYAML, false, ear.TrustTierContraindicated, "debug disabled"},
		{"snp tcb below minimum", mod(snpClaims(), func(c map[string]any) {
			c["snp"].(map[string]any)["reported_tcb"].(map[string]any)["snp"] = 7
		}), refYAML, false, ear.TrustTierContraindicated, "snp minimum tcb"},
		{"snp wrong vmpl", mod(snpClaims(), func(c map[string]any) { c["snp"].(map[string]any)["vmpl"] = 2 }), refYAML, false, ear.TrustTierContraindicated, "snp vmpl"},
		{"tdx up to date", tdxClaims("UpToDate"), refYAML, false, ear.TrustTierAffirming, ""},
		{"tdx sw hardening needed", tdxClaims("SWHardeningNeeded"), refYAML, false, ear.TrustTierWarning, ""},
		{"tdx out of date", tdxClaims("OutOfDate"), refYAML, false, ear.TrustTierContraindicated, "tdx tcb status"},
		{"tdx revoked", tdxClaims("Revoked"), refYAML, false, ear.TrustTierContraindicated, "tdx tcb status"},
		{"tdx mr_seam not allowed", tdxClaims("UpToDate"), refYAML + "tdx: {mr_seam: [ff]}\n", false, ear.TrustTierWarning, "tdx mr_seam"},
		{"sim refused outside dev mode", simClaims(), "", false, ear.TrustTierContraindicated, "simulated tee"},
		{"sim in dev mode is a warning", simClaims(), "", true, ear.TrustTierWarning, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(ctx, Config{Reference: reference(t, tt.ref), DevMode: tt.dev})
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
			if got.Explain["hardware"] == "" {
				t.Error("no explanation for the hardware claim")
			}
		})
	}
}

func TestBadPolicy(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, Config{Policy: "package kura.appraisal\nresult := {"}); !errors.Is(err, ErrPolicy) {
		t.Errorf("syntax error: %v, want ErrPolicy", err)
	}
	a, err := New(ctx, Config{Policy: "package kura.appraisal\nresult := {\"trust_vector\": \"nope\"}"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Appraise(ctx, simClaims()); !errors.Is(err, ErrPolicy) {
		t.Errorf("wrong shape: %v, want ErrPolicy", err)
	}
}

func TestReferenceValuesRejectTypos(t *testing.T) {
	for _, in := range []string{
		"measurment: []",
		"measurements: [{tee: sgx, name: x, value: " + measurement + "}]",
		"measurements: [{tee: snp, name: x, value: abcd}]",
		"snp: {min_tbc: {snp: 1}}",
		"tdx: {tcb_status: {UpToDate: fine}}",
	} {
		if _, err := ParseReferenceValues([]byte(in)); err == nil {
			t.Errorf("ParseReferenceValues(%q) accepted", in)
		}
	}
}

func BenchmarkAppraise(b *testing.B) {
	ctx := context.Background()
	rv, _ := ParseReferenceValues([]byte(refYAML))
	a, err := New(ctx, Config{Reference: rv})
	if err != nil {
		b.Fatal(err)
	}
	claims := snpClaims()
	for b.Loop() {
		if _, err := a.Appraise(ctx, claims); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMemo(t *testing.T) {
	ctx := context.Background()
	a, err := New(ctx, Config{Reference: reference(t, refYAML)})
	if err != nil {
		t.Fatal(err)
	}
	if !a.query.Pure() {
		t.Fatal("default policy not memoised")
	}
	first, err := a.Appraise(ctx, snpClaims())
	if err != nil {
		t.Fatal(err)
	}
	first.Checks[0].Status = "tampered by caller"
	again, err := a.Appraise(ctx, snpClaims())
	if err != nil {
		t.Fatal(err)
	}
	if again.Checks[0].Status == "tampered by caller" {
		t.Error("caller's change to a result leaked into the memo")
	}
	debug := snpClaims()
	debug["debug"] = true
	if got, _ := a.Appraise(ctx, debug); got.Status != ear.TrustTierContraindicated {
		t.Errorf("memo returned a stale result for different claims: %v", got.Status)
	}

}

// BenchmarkAppraiseUncached measures policy evaluations that miss the memo:
// every iteration appraises different claims.
func BenchmarkAppraiseUncached(b *testing.B) {
	ctx := context.Background()
	rv, _ := ParseReferenceValues([]byte(refYAML))
	a, err := New(ctx, Config{Reference: rv})
	if err != nil {
		b.Fatal(err)
	}
	claims := snpClaims()
	i := 0
	for b.Loop() {
		i++
		claims["platform_id"] = fmt.Sprint(i)
		if _, err := a.Appraise(ctx, claims); err != nil {
			b.Fatal(err)
		}
	}
}
