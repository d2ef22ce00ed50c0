package appraisal

import (
	"context"
	"strings"
	"testing"

	"github.com/veraison/ear"
)

var (
	ccaRIM = strings.Repeat("43", 64)
	ccaBL  = strings.Repeat("07", 32)
	ccaM1  = strings.Repeat("0b", 32)
	ccaSig = strings.Repeat("5e", 32)
)

// ccaClaims are claims as attestation/cca makes them, of a platform in the
// secured lifecycle with two software components.
func ccaClaims() map[string]any {
	comp := func(typ, value, version string) map[string]any {
		return map[string]any{"measurement_type": typ, "measurement_value": value, "signer_id": ccaSig, "version": version, "hash_algo_id": "sha-256"}
	}
	cca := map[string]any{
		"platform_profile": "http://arm.com/CCA-SSD/1.0.0", "implementation_id": strings.Repeat("00", 32),
		"instance_id": "01" + strings.Repeat("02", 32), "platform_config": "010203",
		"lifecycle": 12288, "lifecycle_state": "secured",
		"sw_components":         []any{comp("BL", ccaBL, "3.4.2"), comp("M1", ccaM1, "1.2.0")},
		"platform_hash_algo_id": "sha-256", "realm_profile": "tag:arm.com,2023:realm#1.0.0",
		"rim": ccaRIM, "personalization_value": strings.Repeat("41", 64),
		"realm_hash_algo_id": "sha-256", "rak": "a4", "rak_hash_algo_id": "sha-512",
	}
	for _, r := range []string{"rem0", "rem1", "rem2", "rem3"} {
		cca[r] = ccaRIM
	}
	return map[string]any{"tee": "cca", "measurement": ccaRIM, "debug": false, "report_data": "00", "insecure": false,
		"platform_id": cca["instance_id"], "cca": cca}
}

var ccaRefYAML = `
measurements:
  - {tee: cca, name: my-realm, value: ` + ccaRIM + `}
cca:
  sw_components:
    - {measurement_type: BL, value: ` + strings.ToUpper(ccaBL) + `, version: "3.4.2", signer_id: ` + ccaSig + `}
    - {value: ` + ccaM1 + `}
  platform_config: ["010203"]
  rem0: [` + ccaRIM + `]
`

func TestAppraiseCCA(t *testing.T) {
	ctx := context.Background()
	mod := func(f func(c, cca map[string]any)) map[string]any {
		c := ccaClaims()
		f(c, c["cca"].(map[string]any))
		return c
	}
	sw := func(cca map[string]any, i int) map[string]any {
		return cca["sw_components"].([]any)[i].(map[string]any)
	}
	tests := []struct {
		name       string
		claims     map[string]any
		ref        string
		wantStatus ear.TrustTier
		failed     string
	}{
		{"affirmed", ccaClaims(), ccaRefYAML, ear.TrustTierAffirming, ""},
		{"no reference values", ccaClaims(), "", ear.TrustTierAffirming, ""},
		{"unknown rim", mod(func(c, _ map[string]any) { c["measurement"] = strings.Repeat("44", 64) }), ccaRefYAML, ear.TrustTierWarning, "measurement"},
		{"unknown rem0", mod(func(_, cca map[string]any) { cca["rem0"] = strings.Repeat("44", 64) }), ccaRefYAML, ear.TrustTierWarning, "cca rem0"},
		{"unknown platform component", mod(func(_, cca map[string]any) { sw(cca, 1)["measurement_value"] = strings.Repeat("0c", 32) }), ccaRefYAML, ear.TrustTierWarning, "cca platform software"},
		{"component of another version", mod(func(_, cca map[string]any) { sw(cca, 0)["version"] = "3.4.1" }), ccaRefYAML, ear.TrustTierWarning, "cca platform software"},
		{"component of another signer", mod(func(_, cca map[string]any) { sw(cca, 0)["signer_id"] = strings.Repeat("00", 32) }), ccaRefYAML, ear.TrustTierWarning, "cca platform software"},
		{"component of another type", mod(func(_, cca map[string]any) { sw(cca, 0)["measurement_type"] = "M2" }), ccaRefYAML, ear.TrustTierWarning, "cca platform software"},
		{"platform config not allowed", mod(func(_, cca map[string]any) { cca["platform_config"] = "010204" }), ccaRefYAML, ear.TrustTierContraindicated, "cca platform config"},
		{"platform decommissioned", mod(func(_, cca map[string]any) { cca["lifecycle"], cca["lifecycle_state"] = 0x6000, "decommissioned" }), "", ear.TrustTierContraindicated, "cca lifecycle"},
		{"implementation not allowed", ccaClaims(), "cca: {implementation_ids: [" + strings.Repeat("11", 32) + "]}", ear.TrustTierContraindicated, "cca implementation id"},
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
			if tv := got.TrustVector; tv.InstanceIdentity == 0 || tv.RuntimeOpaque == 0 || tv.Hardware == 0 {
				t.Errorf("trust vector %v: identity, runtime-opaque and hardware must be claimed", tv)
			}
		})
	}
}

func TestCCAReferenceValues(t *testing.T) {
	rv := reference(t, ccaRefYAML)
	if got := rv.CCA.SWComponents[0].Value; got != ccaBL {
		t.Errorf("component value %q, want it lower-cased", got)
	}
	for _, size := range []int{32, 48, 64} {
		in := "measurements: [{tee: cca, name: r, value: " + strings.Repeat("ab", size) + "}]"
		if _, err := ParseReferenceValues([]byte(in)); err != nil {
			t.Errorf("a %d-byte RIM: %v", size, err)
		}
	}
	for _, in := range []string{
		"measurements: [{tee: cca, name: r, value: " + strings.Repeat("ab", 33) + "}]",
		"measurements: [{tee: snp, name: r, value: " + strings.Repeat("ab", 64) + "}]",
		"cca: {sw_components: [{value: abcd}]}",
		"cca: {sw_components: [{value: " + ccaBL + ", signer_id: zz}]}",
		"cca: {sw_component: []}",
		"cca: {rem4: []}",
	} {
		if _, err := ParseReferenceValues([]byte(in)); err == nil {
			t.Errorf("ParseReferenceValues(%q) accepted", in)
		}
	}
}
