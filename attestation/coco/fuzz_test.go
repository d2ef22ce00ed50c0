package coco

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// seedSNP adds the real SNP vectors, in every serialisation, to f.
func seedSNP(f *testing.F) {
	for _, load := range []func(testing.TB) ([]byte, []sevCert, *attestation.Bundle){milan, genoa} {
		report, certs, _ := load(f)
		f.Add(snpEvidenceJSON(report, certs, sevStyle{}))
		f.Add(snpEvidenceJSON(report, nil, sevStyle{mit: true}))
		f.Add(snpEvidenceJSON(report, certs[:1], sevStyle{turin: true}))
	}
}

// FuzzParseSNP: nothing panics; what parses is a 1184-byte report whose
// re-serialisation (sev 6 or 7 form, in the layout it came in) parses to
// the same bytes.
func FuzzParseSNP(f *testing.F) {
	seedSNP(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseSNP(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(b.Evidence) != 1184 {
			t.Fatalf("report is %d bytes", len(b.Evidence))
		}
		if err := b.Check(); err != nil {
			t.Fatalf("bundle does not check: %v", err)
		}
		for _, st := range []sevStyle{{}, {turin: true}, {mit: true}, {turin: true, mit: true}} {
			again, err := ParseSNP(snpEvidenceJSON(b.Evidence, nil, st))
			if err == nil && bytes.Equal(again.Evidence, b.Evidence) {
				return
			}
		}
		t.Fatal("no re-serialisation of the parsed report parses to the same bytes")
	})
}

// FuzzParseTDX: nothing panics; what parses re-serialises to the same quote.
func FuzzParseTDX(f *testing.F) {
	quote, _ := sprQuote(f)
	f.Add(tdxEvidenceJSON(quote))
	f.Add([]byte(`{"cc_eventlog":"AA==","quote":"AAEC","aa_eventlog":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseTDX(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := ParseTDX(tdxEvidenceJSON(b.Evidence))
		if err != nil || !bytes.Equal(again.Evidence, b.Evidence) {
			t.Fatalf("re-serialised quote: %v", err)
		}
	})
}

// FuzzParseEvidence: any input, any TEE, no panic, errors wrap ErrMalformed.
func FuzzParseEvidence(f *testing.F) {
	seedSNP(f)
	quote, _ := sprQuote(f)
	f.Add(tdxEvidenceJSON(quote))
	f.Add([]byte(`{"svn":"1","report_data":""}`))
	f.Add([]byte(`{"format":"kura-sim-evidence/v1","signature":"AA=="}`))
	seedAzure(f)
	token, _ := captures.CCAToken()
	f.Add(ccaEvidenceJSON(token))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tee := range []attestation.TEE{attestation.SNP, attestation.TDX, attestation.Sim, attestation.AzSNPvTPM, attestation.AzTDXvTPM, attestation.CCA} {
			b, err := ParseEvidence(tee, data)
			if err != nil {
				if !errors.Is(err, attestation.ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				continue
			}
			if b.TEE != tee || len(b.Evidence) == 0 {
				t.Fatalf("ParseEvidence(%s) = %+v", tee, b)
			}
		}
	})
}

// seedAzure adds the Azure vTPM captures, in every shape of CoCo evidence,
// to f; it fails when there are none.
func seedAzure(f *testing.F) {
	vs := azVectors(f)
	if len(vs) == 0 {
		f.Fatal("no Azure vectors to seed from")
	}
	for _, v := range vs {
		for _, version := range []int{0, 1, 2} {
			f.Add(v.json(version))
		}
	}
}

// FuzzParseAzure: nothing panics; what parses as either Azure vTPM TEE
// re-serialises (version 1) to evidence that parses to the same bundle.
func FuzzParseAzure(f *testing.F) {
	seedAzure(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tee := range []attestation.TEE{attestation.AzSNPvTPM, attestation.AzTDXvTPM} {
			b, err := ParseEvidence(tee, data)
			if err != nil {
				if !errors.Is(err, attestation.ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				continue
			}
			if b.VTPM == nil || len(b.VTPM.Signature) < 6 {
				t.Fatalf("bundle without a TPM signature: %+v", b)
			}
			v := azVector{tee: tee, hcl: b.Evidence, message: b.VTPM.Quote, sig: b.VTPM.Signature[6:], pcrs: b.VTPM.PCRs, tdQuote: b.VTPM.TDQuote}
			if tee == attestation.AzSNPvTPM {
				block, _ := pem.Decode(b.Certs)
				if block == nil {
					t.Fatalf("az-snp-vtpm bundle without a VCEK")
				}
				v.vcek = block.Bytes
			}
			again, err := ParseEvidence(tee, v.json(1))
			if err != nil {
				t.Fatalf("re-serialised evidence: %v", err)
			}
			if !bytes.Equal(mustJSON(t, again), mustJSON(t, b)) {
				t.Fatal("re-serialised evidence parses to another bundle")
			}
		}
	})
}

// FuzzParseCCA: nothing panics; what parses re-serialises to the same
// token.
func FuzzParseCCA(f *testing.F) {
	token, _ := captures.CCAToken()
	if len(token) == 0 {
		f.Fatal("no CCA token to seed from")
	}
	f.Add(ccaEvidenceJSON(token))
	f.Add([]byte(`{"token":[210,1,2]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseCCA(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := ParseCCA(ccaEvidenceJSON(b.Evidence))
		if err != nil || !bytes.Equal(again.Evidence, b.Evidence) {
			t.Fatalf("re-serialised token: %v", err)
		}
	})
}

// FuzzParseTPM: nothing panics; what parses is a checked tpm bundle.
func FuzzParseTPM(f *testing.F) {
	ev, _ := swtpmEvidence(f)
	data, _ := json.Marshal(ev)
	f.Add(data)
	f.Add(captures.TrusteeTPMEvidence())
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseEvidence(attestation.TPM, data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if err := b.Check(); err != nil || b.TEE != attestation.TPM {
			t.Fatalf("bundle %s does not check: %v", b.TEE, err)
		}
	})
}
