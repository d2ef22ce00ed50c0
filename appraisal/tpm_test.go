package appraisal

import (
	"context"
	"strings"
	"testing"

	"github.com/veraison/ear"
)

// workerDigest is the SHA-256 of the approved kura worker binary in the
// tpm test claims.
var workerDigest = strings.Repeat("ab", 32)

// tpmClaims returns tpm claims whose IMA list measured the kura worker
// with digest.
func tpmClaims(digest string) map[string]any {
	return map[string]any{
		"tee": "tpm", "measurement": strings.Repeat("11", 32), "debug": false, "insecure": false,
		"vtpm": map[string]any{
			"ak_trust": "pinned",
			"pcrs":     map[string]any{"sha256": map[string]any{"10": strings.Repeat("0a", 32)}},
			"events": []any{
				map[string]any{"source": "tcg", "pcr": 4, "type": "EV_EFI_ACTION", "digests": map[string]any{"sha256": strings.Repeat("04", 32)}, "description": "Calling EFI Application from Boot Option", "data_verified": true},
				map[string]any{"source": "tcg", "pcr": 4, "type": "EV_EFI_BOOT_SERVICES_APPLICATION", "digests": map[string]any{"sha256": strings.Repeat("05", 32)}, "description": "/usr/local/bin/kura-worker", "data_verified": false},
				map[string]any{"source": "ima", "pcr": 10, "type": "ima-ng", "digests": map[string]any{"sha256": digest}, "description": "/usr/local/bin/kura-worker", "data_verified": true},
			},
		},
	}
}

// TestAppraiseTPM checks the events reference values: a required event
// (the worker binary by name and digest) and forbidden ones.
func TestAppraiseTPM(t *testing.T) {
	ctx := context.Background()
	required := "events:\n  required:\n    - {name: /usr/local/bin/kura-worker, digest: " + workerDigest + "}\n"
	tests := []struct {
		name       string
		claims     map[string]any
		ref        string
		wantStatus ear.TrustTier
		failed     string
		detail     string
	}{
		{"no reference values", tpmClaims(workerDigest), "", ear.TrustTierAffirming, "", ""},
		{"required worker", tpmClaims(workerDigest), required, ear.TrustTierAffirming, "", ""},
		{"patched worker", tpmClaims(strings.Repeat("cd", 32)), required, ear.TrustTierWarning, "required events", "/usr/local/bin/kura-worker (" + workerDigest + ")"},
		{"required by digest only", tpmClaims(workerDigest), "events: {required: [{digest: " + strings.ToUpper(workerDigest) + "}]}\n", ear.TrustTierAffirming, "", ""},
		{"required on another pcr", tpmClaims(workerDigest), "events: {required: [{digest: " + workerDigest + ", pcr: 11}]}\n", ear.TrustTierWarning, "required events", workerDigest},
		{"forbidden present", tpmClaims(workerDigest), "events: {forbidden: [{name: /usr/local/bin/kura-worker}]}\n", ear.TrustTierWarning, "forbidden events", "PCR 10 ima-ng /usr/local/bin/kura-worker"},
		{"required efi action", tpmClaims(workerDigest), "events: {required: [{name: Calling EFI Application from Boot Option, pcr: 4}]}\n", ear.TrustTierAffirming, "", ""},
		// The boot log's EV_EFI_BOOT_SERVICES_APPLICATION event names the
		// worker in unbound data; only the IMA entry counts.
		{"unbound description", tpmClaims(workerDigest), "events: {required: [{name: /usr/local/bin/kura-worker, pcr: 4}]}\n", ear.TrustTierWarning, "required events", "/usr/local/bin/kura-worker"},
		{"forbidden absent", tpmClaims(workerDigest), "events: {forbidden: [{name: /tmp/backdoor}]}\n", ear.TrustTierAffirming, "", ""},
		{"pcr reference", tpmClaims(workerDigest), "vtpm: {pcrs: {sha256: {\"10\": [" + strings.Repeat("0b", 32) + "]}}}\n", ear.TrustTierWarning, "vtpm pcr sha256:10", ""},
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
			if tv := got.TrustVector; tv.RuntimeOpaque != 0 {
				t.Errorf("runtime-opaque = %d, want no claim: a TPM isolates no memory", tv.RuntimeOpaque)
			}
		})
	}
}

// TestAppraiseTPMAKTrust checks that the appraisal says how the quoting
// key came to be trusted: pinned, or certified by a configured authority.
func TestAppraiseTPMAKTrust(t *testing.T) {
	ctx := context.Background()
	a, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	certified := tpmClaims(workerDigest)
	vt := certified["vtpm"].(map[string]any)
	vt["ak_trust"] = "certificate"
	vt["ak_certificate"] = map[string]any{"issuer": "CN=vendor AK CA", "root": "CN=vendor root"}
	for name, c := range map[string]struct {
		claims         map[string]any
		detail, reason string
	}{
		"pinned":      {tpmClaims(workerDigest), "pinned in the verifier's configuration", "pinned attestation key"},
		"certificate": {certified, "certified by CN=vendor AK CA under the configured root CN=vendor root", "certificate from a configured authority"},
	} {
		got, err := a.Appraise(ctx, c.claims)
		if err != nil {
			t.Fatal(err)
		}
		var detail string
		for _, ch := range got.Checks {
			if ch.Name == "tpm attestation key" {
				detail = ch.Detail
			}
		}
		if !strings.Contains(detail, c.detail) || !strings.Contains(got.Explain["instance-identity"], c.reason) {
			t.Errorf("%s: check %q, instance-identity %q", name, detail, got.Explain["instance-identity"])
		}
	}
}

// TestEventReferenceValues checks the events section's validation.
func TestEventReferenceValues(t *testing.T) {
	for name, doc := range map[string]string{
		"empty match":  "events: {required: [{pcr: 10}]}\n",
		"short digest": "events: {required: [{digest: abcd}]}\n",
		"bad pcr":      "events: {forbidden: [{name: x, pcr: 24}]}\n",
		"unknown key":  "events: {required: [{file: x}]}\n",
	} {
		if _, err := ParseReferenceValues([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
