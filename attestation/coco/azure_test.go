package coco

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/internal/captures"
)

// azVector is Azure vTPM evidence from internal/captures, in the pieces a
// CoCo attester serialises: the HCL report, the TPM quote's message
// (TPMS_ATTEST), bare RSA signature and PCR values, and the VCEK (DER) or
// TD quote.
type azVector struct {
	tee     attestation.TEE
	hcl     []byte
	message []byte
	sig     []byte
	pcrs    [][]byte
	vcek    []byte // az-snp-vtpm
	tdQuote []byte // az-tdx-vtpm
}

func azVectors(t testing.TB) []azVector {
	t.Helper()
	attest, sig, pcrs, _ := captures.AzureTPMQuote()
	snpHCL, certs := captures.AzureSNPHCLReport()
	block, _ := pem.Decode(certs)
	if block == nil {
		t.Fatal("no VCEK in the Azure capture")
	}
	quote, _ := sprQuote(t)
	return []azVector{
		{tee: attestation.AzSNPvTPM, hcl: snpHCL, message: attest, sig: sig, pcrs: pcrs, vcek: block.Bytes},
		{tee: attestation.AzTDXvTPM, hcl: captures.AzureTDXHCLReport(), message: attest, sig: sig, pcrs: pcrs, tdQuote: quote},
	}
}

// want is the bundle azure.NewBundle builds from the same pieces as raw
// artifacts (what `kura attest verify --tee az-*` reads).
func (v azVector) want(t testing.TB) *attestation.Bundle {
	t.Helper()
	q := append(bytes.Clone(v.message), 0x00, 0x14, 0x00, 0x0b)
	q = binary.BigEndian.AppendUint16(q, uint16(len(v.sig)))
	a := azure.Artifacts{HCLReport: v.hcl, Quote: append(q, v.sig...), PCRs: bytes.Join(v.pcrs, nil), TDQuote: v.tdQuote}
	if v.vcek != nil {
		a.Certs = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: v.vcek})
	}
	b, err := azure.NewBundle(v.tee, a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// json renders the vector as guest-components' attester does: version 1
// or 2 (serde_with hex and URL-safe padded base64), or 0 for the older
// form without a version (serde's byte arrays; for SNP the "quote",
// "report" and PEM "vcek" members).
func (v azVector) json(version int) []byte {
	b64 := base64.URLEncoding.EncodeToString
	var members []string
	if version == 0 {
		pcrs := make([]string, len(v.pcrs))
		for i, p := range v.pcrs {
			pcrs[i] = jsonBytes(p)
		}
		quote := fmt.Sprintf(`{"signature":%s,"message":%s,"pcrs":[%s]}`, jsonBytes(v.sig), jsonBytes(v.message), strings.Join(pcrs, ","))
		if v.tee == attestation.AzSNPvTPM {
			vcek, _ := json.Marshal(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: v.vcek})))
			members = []string{`"quote":` + quote, `"report":` + jsonBytes(v.hcl), `"vcek":` + string(vcek)}
		} else {
			members = []string{`"tpm_quote":` + quote, `"hcl_report":` + jsonBytes(v.hcl), `"td_quote":` + jsonBytes(v.tdQuote)}
		}
	} else {
		pcrs := make([]string, len(v.pcrs))
		for i, p := range v.pcrs {
			pcrs[i] = `"` + hex.EncodeToString(p) + `"`
		}
		quote := fmt.Sprintf(`{"signature":"%x","message":"%x","pcrs":[%s]}`, v.sig, v.message, strings.Join(pcrs, ","))
		members = []string{fmt.Sprintf(`"version":%d`, version), `"tpm_quote":` + quote, `"hcl_report":"` + b64(v.hcl) + `"`}
		if v.tee == attestation.AzSNPvTPM {
			members = append(members, `"vcek":"`+b64(v.vcek)+`"`)
		} else {
			members = append(members, `"td_quote":"`+b64(v.tdQuote)+`"`)
		}
	}
	return []byte("{" + strings.Join(members, ",") + "}")
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAzureEvidence: every shape of each Azure vTPM attester's evidence
// converts to exactly the bundle the raw artifacts make, which then takes
// a CoCo binding as the key broker sets it.
func TestAzureEvidence(t *testing.T) {
	for _, v := range azVectors(t) {
		want := mustJSON(t, v.want(t))
		for _, version := range []int{0, 1, 2} {
			t.Run(fmt.Sprintf("%s v%d", v.tee, version), func(t *testing.T) {
				b, err := ParseEvidence(v.tee, v.json(version))
				if err != nil {
					t.Fatal(err)
				}
				if got := mustJSON(t, b); !bytes.Equal(got, want) {
					t.Fatalf("bundle differs from the raw artifacts' bundle:\n got %.300s\nwant %.300s", got, want)
				}
				// As a JSON string (KBS protocol 0.1.0 clients) too.
				s, _ := json.Marshal(string(v.json(version)))
				if again, err := ParseEvidence(v.tee, s); err != nil || !bytes.Equal(mustJSON(t, again), want) {
					t.Fatalf("evidence as a JSON string: %v", err)
				}
				b.RuntimeData = attestation.RuntimeData{Nonce: bytes.Repeat([]byte{1}, 32), PublicKey: []byte(`{"crv":"P-256","kty":"EC","x":"AA","y":"AA"}`)}
				b.Binding = attestation.BindingCoCoKBS04
				if err := b.Check(); err != nil {
					t.Fatalf("bundle with a CoCo binding: %v", err)
				}
			})
		}
	}
}

// TestAzureUnpaddedBase64: serde_with reads unpadded URL-safe base64, so
// kura does too.
func TestAzureUnpaddedBase64(t *testing.T) {
	v := azVectors(t)[1]
	ev := strings.ReplaceAll(string(v.json(1)), "=", "")
	if _, err := ParseAzTDXvTPM([]byte(ev)); err != nil {
		t.Fatal(err)
	}
}

func TestAzureMalformed(t *testing.T) {
	vs := azVectors(t)
	snp1, tdx1 := string(vs[0].json(1)), string(vs[1].json(1))
	snp0 := string(vs[0].json(0))
	short := vs[0]
	short.pcrs = append([][]byte{short.pcrs[0][:31]}, short.pcrs[1:]...)
	tests := []struct {
		name        string
		tee         attestation.TEE
		ev          string
		unsupported bool
	}{
		{"version 3", attestation.AzSNPvTPM, strings.Replace(snp1, `"version":1`, `"version":3`, 1), true},
		{"version as a string", attestation.AzSNPvTPM, strings.Replace(snp1, `"version":1`, `"version":"1"`, 1), false},
		{"unknown member", attestation.AzSNPvTPM, strings.Replace(snp1, `"version":1`, `"version":1,"extra":0`, 1), false},
		{"unknown quote member", attestation.AzTDXvTPM, strings.Replace(tdx1, `"tpm_quote":{`, `"tpm_quote":{"nonce":"00",`, 1), false},
		{"missing vcek", attestation.AzSNPvTPM, snp1[:strings.Index(snp1, `,"vcek"`)] + "}", false},
		{"td_quote in snp evidence", attestation.AzSNPvTPM, strings.Replace(snp1, `"vcek"`, `"td_quote"`, 1), false},
		{"standard base64", attestation.AzTDXvTPM, strings.Replace(strings.Replace(tdx1, "-", "+", -1), "_", "/", -1), false},
		{"odd hex", attestation.AzTDXvTPM, strings.Replace(tdx1, `"signature":"`, `"signature":"0`, 1), false},
		{"pcrs not hex", attestation.AzTDXvTPM, strings.Replace(tdx1, `"pcrs":["`, `"pcrs":["zz`, 1), false},
		{"no pcrs", attestation.AzTDXvTPM, tdx1[:strings.Index(tdx1, `"pcrs":[`)] + `"pcrs":[]}` + tdx1[strings.Index(tdx1, `],"hcl_report"`)+1:], false},
		{"pcr of 31 bytes (v0)", attestation.AzSNPvTPM, string(short.json(0)), false},
		{"vcek not PEM (v0)", attestation.AzSNPvTPM, snp0[:strings.Index(snp0, `"vcek":`)] + `"vcek":"MIIB"}`, false},
		{"hcl report of the other TEE", attestation.AzTDXvTPM, strings.Replace(tdx1, tdx1[strings.Index(tdx1, `"hcl_report":`):strings.Index(tdx1, `,"td_quote"`)], snp1[strings.Index(snp1, `"hcl_report":`):strings.Index(snp1, `,"vcek"`)], 1), false},
		{"tpm quote message truncated", attestation.AzTDXvTPM, strings.Replace(tdx1, `"message":"ff54`, `"message":"`, 1), false},
		{"null quote", attestation.AzTDXvTPM, `{"version":1,"tpm_quote":null,"hcl_report":"AA","td_quote":"AA"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvidence(tt.tee, []byte(tt.ev))
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("ParseEvidence() error = %v, want ErrMalformed", err)
			}
			if errors.Is(err, ErrUnsupported) != tt.unsupported {
				t.Errorf("ParseEvidence() error = %v, unsupported = %v", err, tt.unsupported)
			}
		})
	}
}
