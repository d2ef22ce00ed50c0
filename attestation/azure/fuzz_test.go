package azure

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// sentinels are the errors every failure must wrap.
var sentinels = []error{
	attestation.ErrMalformed, attestation.ErrBadSignature, attestation.ErrUntrustedRoot,
	attestation.ErrCollateralUnavailable, attestation.ErrCollateralExpired, attestation.ErrBinding,
}

// hclSeeds are real and synthetic HCL reports.
func hclSeeds(t testing.TB) [][]byte {
	snpHCL, _ := captures.AzureSNPHCLReport()
	report, _ := genoaReport(t)
	k := testKey().PublicKey
	seeds := [][]byte{
		snpHCL, captures.AzureTDXHCLReport(),
		makeHCL(report, reportTypeSNP, hashTypeSHA384, runtimeJSON(&k), 0),
	}
	for _, s := range seeds {
		if len(s) == 0 {
			t.Fatal("empty seed: a capture in internal/captures is missing")
		}
	}
	return seeds
}

// FuzzParseHCLReport feeds arbitrary bytes to the HCL report parser and the
// TD report and runtime data parsers behind it. Nothing may panic, every
// failure is ErrMalformed, and what parses is exactly the input's parts.
func FuzzParseHCLReport(f *testing.F) {
	for _, s := range hclSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHCLReport(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		if !bytes.Equal(h.hardware, data[hwAreaOffset:hwAreaOffset+len(h.hardware)]) ||
			!bytes.Equal(h.runtimeData, data[varDataOffset:varDataOffset+len(h.runtimeData)]) ||
			!allZero(data[varDataOffset+len(h.runtimeData):]) {
			t.Fatal("parsed parts are not the input's")
		}
		if want := map[attestation.TEE]int{attestation.AzSNPvTPM: snpReportSize, attestation.AzTDXvTPM: tdReportSize}[h.tee]; len(h.hardware) != want {
			t.Fatalf("%s hardware report of %d bytes", h.tee, len(h.hardware))
		}
		if h.tee == attestation.AzTDXvTPM {
			if _, err := parseTDReport(h.hardware); err != nil && !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("td report error is not ErrMalformed: %v", err)
			}
		}
		if _, err := parseRuntimeData(h.runtimeData); err != nil && !errors.Is(err, attestation.ErrMalformed) {
			t.Fatalf("runtime data error is not ErrMalformed: %v", err)
		}
	})
}

// FuzzParseRuntimeData feeds arbitrary JSON to the runtime data parser.
func FuzzParseRuntimeData(f *testing.F) {
	k := testKey().PublicKey
	seeds := [][]byte{captures.AzureRuntimeData(), runtimeJSON(&k), []byte(`{"keys":[]}`)}
	for _, s := range hclSeeds(f) {
		if h, err := parseHCLReport(s); err == nil {
			seeds = append(seeds, h.runtimeData)
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rd, err := parseRuntimeData(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		if rd.ak == nil || rd.ak.N.BitLen() < minAKBits || rd.ak.N.BitLen() > maxAKBits {
			t.Fatalf("accepted AK %v", rd.ak)
		}
	})
}

// FuzzParseTPMQuote feeds arbitrary quotes, signatures and PCR values to the
// TPM quote parser, the signature check and the PCR check, and the quote
// file splitting NewBundle does.
func FuzzParseTPMQuote(f *testing.F) {
	attest, sig, pcrs, _ := captureQuote(f)
	sAttest, sSig := makeQuote(f, quoteSpec{key: testKey(), extraData: []byte("nonce"), pcrs: testPCRs()})
	f.Add(attest, sig, bytes.Join(pcrs, nil))
	f.Add(sAttest, sSig, bytes.Join(testPCRs(), nil))
	f.Fuzz(func(t *testing.T, attest, sig, pcrBlob []byte) {
		if n, err := quoteLen(append(bytes.Clone(attest), sig...)); err == nil && n > len(attest)+len(sig) {
			t.Fatalf("quoteLen %d past the input", n)
		} else if err != nil && !errors.Is(err, attestation.ErrMalformed) {
			t.Fatalf("quoteLen error is not ErrMalformed: %v", err)
		}
		q, err := parseTPMQuote(attest, sig)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		if err := q.verifySignature(&testKey().PublicKey); err != nil && !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("signature error is not ErrBadSignature: %v", err)
		}
		var values [][]byte
		for len(pcrBlob) >= 32 {
			values, pcrBlob = append(values, pcrBlob[:32]), pcrBlob[32:]
		}
		if _, err := q.checkPCRs(values); err != nil && !isAny(err, attestation.ErrMalformed, attestation.ErrBadSignature) {
			t.Fatalf("PCR error wraps no sentinel: %v", err)
		}
	})
}

// FuzzVerify runs the whole Verifier, and NewBundle, on arbitrary HCL
// reports and quotes, with a stand-in SNP verifier that accepts any report
// and reports the runtime data's digest as bound.
func FuzzVerify(f *testing.F) {
	c := newSNPCase(f, []byte("nonce"))
	f.Add(c.hcl, c.attest, c.sig, bytes.Join(c.pcrs, nil))
	attest, sig, pcrs, _ := captureQuote(f)
	for _, s := range hclSeeds(f) {
		f.Add(s, attest, sig, bytes.Join(pcrs, nil))
	}
	stand := &fakeHW{tee: attestation.SNP, claims: map[string]any{"tee": "snp"}, reportData: c.hw.reportData}
	v := newVerifier(f, Config{SNP: stand, TDX: stand})
	f.Fuzz(func(t *testing.T, hcl, attest, sig, pcrBlob []byte) {
		var values [][]byte
		for len(pcrBlob) >= 32 {
			values, pcrBlob = append(values, pcrBlob[:32]), pcrBlob[32:]
		}
		for _, tee := range []attestation.TEE{attestation.AzSNPvTPM, attestation.AzTDXvTPM} {
			b := &attestation.Bundle{Version: 1, TEE: tee, Evidence: hcl, VTPM: &attestation.VTPM{Quote: attest, Signature: sig, PCRs: values, TDQuote: []byte{1}}}
			if _, err := v.Verify(context.Background(), b); err != nil && !isAny(err, sentinels...) {
				t.Fatalf("Verify error wraps no sentinel: %v", err)
			}
			a := Artifacts{HCLReport: hcl, Quote: append(bytes.Clone(attest), sig...), PCRs: bytes.Join(values, nil)}
			if _, err := NewBundle(tee, a); err != nil && !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("NewBundle error is not ErrMalformed: %v", err)
			}
		}
	})
}
