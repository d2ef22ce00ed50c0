package coco

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/internal/captures"
)

// trusteeAzureTime is inside every Trustee Azure vector's certificates'
// validity: the Milan VCEK's (2025-01-28 to 2032-01-28), the Genoa VCEK's
// (2025-01-24 to 2032-01-24) and the TD quote's PCK chain (2023-09-13 to
// 2030-09-13).
var trusteeAzureTime = time.Date(2026, time.June, 1, 0, 0, 0, 0, time.UTC)

// trusteeAzureVerifier verifies offline: the SNP verifier with no getter
// (the VCEK comes with the evidence, AMD's ASKs and ARKs are embedded), the
// TDX verifier with no getter and no collateral for the TD quote's FMSPC,
// so its TCB info, QE identity and TCB level are skipped.
func trusteeAzureVerifier(t *testing.T) *azure.Verifier {
	t.Helper()
	now := func() time.Time { return trusteeAzureTime }
	s, err := snp.NewVerifier(snp.Config{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	x, err := tdx.NewVerifier(tdx.Config{Now: now, AllowMissingCollateral: true})
	if err != nil {
		t.Fatal(err)
	}
	v, err := azure.NewVerifier(azure.Config{SNP: s, TDX: x})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// trusteeAzureVector is one of Trustee's Azure evidence files with what
// kura must find in it.
type trusteeAzureVector struct {
	name        string
	tee         attestation.TEE
	data        []byte
	measurement string
	vmUniqueID  string
}

func trusteeAzureVectors() []trusteeAzureVector {
	genoa, _ := captures.TrusteeAzSNPGenoaEvidence()
	return []trusteeAzureVector{
		{"milan v2", attestation.AzSNPvTPM, captures.TrusteeAzSNPEvidence(),
			"5b0ce64ad1c1f6375dbda5f760b98526ca1bcf91b8195091afc28e7b024251d68fe32e05af34048d6607678cd23283ff", "7DF7B373-B947-4AAA-96E5-C358F2A03D20"},
		{"genoa unversioned", attestation.AzSNPvTPM, genoa,
			"f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae", "390CBCF5-6C67-4D9B-98EF-C3F1699CC8FC"},
		{"tdx v1", attestation.AzTDXvTPM, captures.TrusteeAzTDXEvidence(),
			"024a32b070383331181619fa387cb4d55d1e38879f989933055ccad5bc2db795d1737b66205949d15469dc8c1ba7ab7b", "6332533D-5649-4D02-8AA7-8F64B7C3EE21"},
	}
}

// hwChecks are the hardware verifier's checks, as the azure verifier
// records them, on each TEE's vector.
var hwChecks = map[attestation.TEE]string{
	attestation.AzSNPvTPM: "snp report parse=passed snp certificates=passed snp certificate chain=passed snp report signature=passed " +
		"snp tcb vs vcek=passed snp chip id vs hwid=passed snp vendor rules=passed snp revocation=skipped snp vmpl=passed",
	attestation.AzTDXvTPM: "tdx quote parse=passed tdx pck chain=passed tdx qe report=passed tdx quote signature=passed " +
		"tdx tcb info=skipped tdx qe identity=skipped tdx revocation=skipped tdx tcb level=skipped td report vs quote=passed",
}

// checkStatuses renders a result's checks as "name=status ...".
func checkStatuses(res *attestation.Result) string {
	if res == nil {
		return ""
	}
	var parts []string
	for _, c := range res.Checks {
		parts = append(parts, c.Name+"="+string(c.Status))
	}
	return strings.Join(parts, " ")
}

// TestTrusteeAzureEvidence: Trustee's Azure vectors are each one VM's
// complete evidence, and kura verifies them end to end: the hardware
// report to AMD's or Intel's root, its report_data binding the runtime
// data, the runtime data's AK signing the TPM quote, the PCR values
// hashing to the quote's digest.
func TestTrusteeAzureEvidence(t *testing.T) {
	v := trusteeAzureVerifier(t)
	for _, tv := range trusteeAzureVectors() {
		t.Run(tv.name, func(t *testing.T) {
			b, err := ParseEvidence(tv.tee, tv.data)
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Verify(context.Background(), b)
			if err != nil {
				t.Fatalf("Verify: %v; checks %s", err, checkStatuses(res))
			}
			want := "hcl report parse=passed " + hwChecks[tv.tee] +
				" runtime data=passed attestation key=passed tpm quote parse=passed tpm quote signature=passed pcr digest=passed"
			if got := checkStatuses(res); got != want {
				t.Errorf("checks\n got %s\nwant %s", got, want)
			}
			c := res.Claims
			if c["tee"] != string(tv.tee) || c["measurement"] != tv.measurement {
				t.Errorf("tee %v, measurement %v; want %s, %s", c["tee"], c["measurement"], tv.tee, tv.measurement)
			}
			if tv.tee == attestation.AzSNPvTPM {
				if vmpl := c["snp"].(map[string]any)["vmpl"]; vmpl != 0 {
					t.Errorf("vmpl %v (%T), want 0", vmpl, vmpl)
				}
			}
			conf := c["azure"].(map[string]any)["vm_configuration"].(map[string]any)
			if conf["vmUniqueId"] != tv.vmUniqueID || conf["secure-boot"] != true || conf["tpm-enabled"] != true {
				t.Errorf("vm_configuration %v, want vmUniqueId %s, secure boot and TPM enabled", conf, tv.vmUniqueID)
			}
			if pcrs := c["vtpm"].(map[string]any)["pcrs"].(map[string]any)["sha256"].(map[string]any); len(pcrs) != 24 {
				t.Errorf("%d SHA-256 PCRs, want 24", len(pcrs))
			}
		})
	}
}

// TestTrusteeAzureGenoaVCEK: Trustee's separate copy of the Genoa VCEK is
// the one its evidence carries.
func TestTrusteeAzureGenoaVCEK(t *testing.T) {
	ev, vcek := captures.TrusteeAzSNPGenoaEvidence()
	b, err := ParseEvidence(attestation.AzSNPvTPM, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Certs, vcek) {
		t.Errorf("the evidence's VCEK is not vcek-genoa.pem:\n%s", b.Certs)
	}
}

// TestTrusteeAzureTampered: one bit flipped in each part of each vector is
// refused at the check that covers that part.
func TestTrusteeAzureTampered(t *testing.T) {
	v := trusteeAzureVerifier(t)
	cases := []struct {
		name    string
		tamper  func(t *testing.T, b *attestation.Bundle)
		wantErr error
		failed  string // the failing check, the last one recorded
		says    string
	}{
		{"hardware report", func(t *testing.T, b *attestation.Bundle) {
			if b.TEE == attestation.AzSNPvTPM {
				b.Evidence[0x20+0x90] ^= 1 // the HCL report's SNP report: MEASUREMENT
			} else {
				b.VTPM.TDQuote[48+136] ^= 1 // the TD quote body: MRTD
			}
		}, attestation.ErrBadSignature, "", "signature"},
		{"runtime data", func(t *testing.T, b *attestation.Bundle) {
			i := bytes.Index(b.Evidence, []byte(`"vmUniqueId":"`))
			if i < 0 {
				t.Fatal("no vmUniqueId in the runtime data")
			}
			b.Evidence[i+len(`"vmUniqueId":"`)] ^= 1 // a digit or letter still
		}, attestation.ErrBinding, "runtime data", "report_data"},
		{"tpm quote", func(t *testing.T, b *attestation.Bundle) {
			b.VTPM.Quote[44] ^= 1 // TPMS_ATTEST extraData, after a 34-byte qualifiedSigner
		}, attestation.ErrBadSignature, "tpm quote signature", "does not verify with the attestation key"},
		{"pcr value", func(t *testing.T, b *attestation.Bundle) {
			b.VTPM.PCRs[7][0] ^= 1
		}, attestation.ErrBadSignature, "pcr digest", "the PCR values hash to"},
	}
	for _, tv := range trusteeAzureVectors() {
		for _, tc := range cases {
			t.Run(tv.name+"/"+tc.name, func(t *testing.T) {
				b, err := ParseEvidence(tv.tee, tv.data)
				if err != nil {
					t.Fatal(err)
				}
				tc.tamper(t, b)
				failed := tc.failed
				if failed == "" {
					failed = map[attestation.TEE]string{attestation.AzSNPvTPM: "snp report signature", attestation.AzTDXvTPM: "tdx quote signature"}[tv.tee]
				}
				res, err := v.Verify(context.Background(), b)
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("Verify() = %v, want %v saying %q", err, tc.wantErr, tc.says)
				}
				if got := checkStatuses(res); !strings.HasSuffix(got, failed+"=failed") || strings.Count(got, "=failed") != 1 {
					t.Errorf("checks %s, want only %s failed, last", got, failed)
				}
			})
		}
	}
}
