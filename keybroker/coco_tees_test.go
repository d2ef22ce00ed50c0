package keybroker

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/captures"
)

// cocoNativeEvidence renders internal/captures' Azure vTPM and CCA
// evidence as guest-components' attesters send it (az-snp-vtpm and
// az-tdx-vtpm evidence version 1, CcaEvidence). None of it binds a broker
// challenge: it can convert, not verify.
func cocoNativeEvidence(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	attest, sig, pcrs, _ := captures.AzureTPMQuote()
	snpHCL, certs := captures.AzureSNPHCLReport()
	vcek, _ := pem.Decode(certs)
	if vcek == nil {
		t.Fatal("no VCEK in the Azure capture")
	}
	hexPCRs := make([]string, len(pcrs))
	for i, p := range pcrs {
		hexPCRs[i] = `"` + hex.EncodeToString(p) + `"`
	}
	quote := fmt.Sprintf(`{"signature":"%x","message":"%x","pcrs":[%s]}`, sig, attest, strings.Join(hexPCRs, ","))
	b64 := base64.URLEncoding.EncodeToString
	token, _ := captures.CCAToken()
	tokenJSON, _ := json.Marshal(bytesAsInts(token))
	return map[string]json.RawMessage{
		"az-snp-vtpm": json.RawMessage(`{"version":1,"tpm_quote":` + quote + `,"hcl_report":"` + b64(snpHCL) + `","vcek":"` + b64(vcek.Bytes) + `"}`),
		// The TD quote is a placeholder: conversion only checks its size.
		"az-tdx-vtpm": json.RawMessage(`{"version":1,"tpm_quote":` + quote + `,"hcl_report":"` + b64(captures.AzureTDXHCLReport()) + `","td_quote":"` + b64([]byte{4, 0, 2, 0}) + `"}`),
		"cca":         json.RawMessage(`{"token":` + string(tokenJSON) + `}`),
	}
}

func bytesAsInts(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

// TestCoCoNewTEEs: the broker opens sessions for az-snp-vtpm, az-tdx-vtpm
// and cca, converts each attester's native evidence and hands it to the
// verifier, which refuses it (401: the captures bind no challenge, and do
// not verify); evidence shaped for another TEE is 400 before that.
func TestCoCoNewTEEs(t *testing.T) {
	f := newFixture(t, fixtureOpts{dev: true})
	ev := cocoNativeEvidence(t)
	for _, version := range []string{"0.1.1", "0.4.0"} {
		for _, tee := range []string{"az-snp-vtpm", "az-tdx-vtpm", "cca"} {
			t.Run(version+"/"+tee, func(t *testing.T) {
				g, st := newCoCoGuest(t, f, version, tee)
				if g == nil {
					t.Fatalf("auth for %s: %d", tee, st)
				}
				if st := g.attest(g.nonce, g.jwkJSON, ev[tee]); st != 401 {
					t.Errorf("attest with %s evidence: %d, want 401 (converted, then refused by the verifier)", tee, st)
				}
			})
			t.Run(version+"/"+tee+" session, other evidence", func(t *testing.T) {
				g, _ := newCoCoGuest(t, f, version, tee)
				other := map[string]string{"az-snp-vtpm": "cca", "az-tdx-vtpm": "az-snp-vtpm", "cca": "az-tdx-vtpm"}[tee]
				if st := g.attest(g.nonce, g.jwkJSON, ev[other]); st != 400 {
					t.Errorf("attest with %s evidence in a %s session: %d, want 400", other, tee, st)
				}
			})
		}
	}
}
