package coco

import (
	"bytes"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tee := range []attestation.TEE{attestation.SNP, attestation.TDX, attestation.Sim} {
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
