package coco

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/attestation/tpm"
	"github.com/kura-cc/kura/internal/captures"
)

// swtpmEvidence returns the swtpm capture of attestation/tpm as
// guest-components' TPM attester would send it, and its qualifying data.
func swtpmEvidence(t testing.TB) (map[string]any, []byte) {
	t.Helper()
	read := func(name string) []byte {
		data, err := os.ReadFile("../tpm/testdata/swtpm/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	attest, sig, pcrs, err := azure.SplitTPMQuote(read("quote.bin"), read("pcrs.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rd, err := hex.DecodeString(strings.TrimSpace(string(read("qualifying_data.hex"))))
	if err != nil {
		t.Fatal(err)
	}
	hexPCRs := make([]any, len(pcrs))
	for i, p := range pcrs {
		hexPCRs[i] = hex.EncodeToString(p)
	}
	std := base64.StdEncoding.EncodeToString
	return map[string]any{
		"report_data": std(rd),
		"ak_public":   std(read("ak.tpmt")),
		"tpm_quote":   map[string]any{"message": std(attest), "signature": std(sig), "pcrs": hexPCRs},
	}, rd
}

// TestTPMEvidence converts the TPM attester's evidence into a tpm bundle
// that verifies by a pinned AK, and refuses what does not fit.
func TestTPMEvidence(t *testing.T) {
	ev, rd := swtpmEvidence(t)
	data, _ := json.Marshal(ev)
	b, err := ParseEvidence(attestation.TPM, data)
	if err != nil {
		t.Fatal(err)
	}
	aks, err := tpm.LoadAKs("../tpm/testdata/swtpm/ak.pem")
	if err != nil {
		t.Fatal(err)
	}
	v, err := tpm.NewVerifier(tpm.Config{AKs: aks})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(context.Background(), b)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if hex.EncodeToString(res.ReportData[:len(rd)]) != hex.EncodeToString(rd) {
		t.Errorf("report data %x, want %x", res.ReportData, rd)
	}
	if _, err := ParseEvidence(attestation.SNP, data); !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), "looks like tpm") {
		t.Errorf("tpm evidence as snp: %v", err)
	}

	for name, mutate := range map[string]func(m map[string]any){
		"report_data differs": func(m map[string]any) { m["report_data"] = base64.StdEncoding.EncodeToString(make([]byte, 64)) },
		"no ak":               func(m map[string]any) { delete(m, "ak_public") },
		"unknown member":      func(m map[string]any) { m["eventlog"] = "AA==" },
		"url-safe base64": func(m map[string]any) {
			m["ak_public"] = strings.NewReplacer("+", "-", "/", "_").Replace(m["ak_public"].(string)) + "-"
		},
		"pcr not hex": func(m map[string]any) { m["tpm_quote"].(map[string]any)["pcrs"] = []any{"zz"} },
		"truncated quote": func(m map[string]any) {
			q := m["tpm_quote"].(map[string]any)
			raw, _ := base64.StdEncoding.DecodeString(q["message"].(string))
			q["message"] = base64.StdEncoding.EncodeToString(raw[:len(raw)-3])
		},
	} {
		ev, _ := swtpmEvidence(t)
		mutate(ev)
		data, _ := json.Marshal(ev)
		if _, err := ParseEvidence(attestation.TPM, data); !errors.Is(err, attestation.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestTrusteeTPMEvidence converts Trustee's TPM test evidence, whose AK is
// given as PKIX and which has no report_data member, and verifies its
// quote with that AK pinned.
func TestTrusteeTPMEvidence(t *testing.T) {
	b, err := ParseEvidence(attestation.TPM, captures.TrusteeTPMEvidence())
	if err != nil {
		t.Fatal(err)
	}
	ak, err := x509.ParsePKIXPublicKey(b.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	v, err := tpm.NewVerifier(tpm.Config{AKs: []*rsa.PublicKey{ak.(*rsa.PublicKey)}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(context.Background(), b)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if len(res.Claims["vtpm"].(map[string]any)["pcrs"].(map[string]any)["sha256"].(map[string]any)) != 24 {
		t.Errorf("claims %v, want 24 SHA-256 PCRs", res.Claims["vtpm"])
	}
	b.VTPM.PCRs[7][0] ^= 1
	if _, err := v.Verify(context.Background(), b); !errors.Is(err, attestation.ErrBadSignature) {
		t.Errorf("altered PCR 7: %v, want bad signature", err)
	}
}
