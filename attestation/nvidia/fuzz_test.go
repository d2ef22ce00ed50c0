package nvidia

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/kura-cc/kura/attestation"
)

// FuzzParseReport feeds arbitrary reports to ParseReport and, when they
// parse, to the Verifier with the vector's chain and nonce. Nothing may
// panic; every parse failure must be ErrMalformed; what parses must encode
// back byte for byte and give claims; every verification failure must wrap
// one of attestation's sentinels.
func FuzzParseReport(f *testing.F) {
	report, chain, roots, nonce := vector(f)
	p := newPKI(f, nil)
	built := testReport(nonce, bytes.Repeat([]byte{0xf1}, 48))
	built.Opaque = append(built.Opaque, OpaqueField{ID: 36, Value: []byte{1}}, OpaqueField{ID: 22, Value: make([]byte, 16)}, OpaqueField{ID: 99, Value: []byte{1}})
	seeds := [][]byte{report, sign(f, built, p.leafKey), report[:len(report)/2]}
	for _, s := range seeds {
		if len(s) == 0 {
			f.Fatal("empty seed: the capture in internal/captures is missing")
		}
		f.Add(s)
	}
	v := newVerifier(f, Config{Roots: roots})
	sentinels := []error{attestation.ErrMalformed, attestation.ErrBadSignature, attestation.ErrUntrustedRoot, attestation.ErrCollateralExpired, attestation.ErrBinding}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReport(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("ParseReport error is not ErrMalformed: %v", err)
			}
			return
		}
		if got := r.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("the parsed report encodes to %x, not its input", got)
		}
		if c := opaqueClaims(r.Opaque); c["driver_version"] == nil || c["vbios_version"] == nil {
			t.Fatalf("parsed report gives opaque claims %v", c)
		}
		res, err := v.VerifyReport(context.Background(), data, chain, nonce)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("VerifyReport error wraps no sentinel: %v", err)
		}
		if !bytes.Equal(data, report) || len(res.ReportData) != attestation.ReportDataSize {
			t.Fatalf("VerifyReport accepted a report other than the vector: %x", data)
		}
	})
}
