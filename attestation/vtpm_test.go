package attestation

import (
	"bytes"
	"errors"
	"testing"
)

// TestVTPMBundleCheck checks that a vtpm member is required by the Azure
// vTPM TEEs, refused elsewhere, bounded, and round-trips through JSON.
func TestVTPMBundleCheck(t *testing.T) {
	pcrs := [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)}
	good := func(tee TEE) *Bundle {
		return &Bundle{Version: BundleVersion, TEE: tee, Evidence: []byte("hcl"), VTPM: &VTPM{Quote: []byte("q"), Signature: []byte("s"), PCRs: pcrs}}
	}
	for _, tee := range []TEE{AzSNPvTPM, AzTDXvTPM} {
		b := good(tee)
		if tee == AzTDXvTPM {
			b.VTPM.TDQuote = []byte("td quote")
		}
		data, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseBundle(data)
		if err != nil {
			t.Fatalf("%s: %v", tee, err)
		}
		if !bytes.Equal(got.VTPM.PCRs[1], pcrs[1]) || !bytes.Equal(got.VTPM.TDQuote, b.VTPM.TDQuote) {
			t.Errorf("%s: vtpm did not round-trip: %+v", tee, got.VTPM)
		}
	}
	for name, f := range map[string]func(b *Bundle){
		"no vtpm":            func(b *Bundle) { b.VTPM = nil },
		"vtpm on snp":        func(b *Bundle) { b.TEE = SNP },
		"empty quote":        func(b *Bundle) { b.VTPM.Quote = nil },
		"oversized quote":    func(b *Bundle) { b.VTPM.Quote = make([]byte, MaxTPMQuoteSize+1) },
		"empty signature":    func(b *Bundle) { b.VTPM.Signature = nil },
		"no pcrs":            func(b *Bundle) { b.VTPM.PCRs = nil },
		"too many pcrs":      func(b *Bundle) { b.VTPM.PCRs = make([][]byte, MaxPCRValues+1) },
		"empty pcr":          func(b *Bundle) { b.VTPM.PCRs = [][]byte{{}} },
		"oversized pcr":      func(b *Bundle) { b.VTPM.PCRs = [][]byte{make([]byte, MaxPCRValueSize+1)} },
		"td quote on snp":    func(b *Bundle) { b.VTPM.TDQuote = []byte("td") },
		"oversized td quote": func(b *Bundle) { b.TEE = AzTDXvTPM; b.VTPM.TDQuote = make([]byte, MaxTDQuoteSize+1) },
	} {
		b := good(AzSNPvTPM)
		f(b)
		if err := b.Check(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Check() = %v, want ErrMalformed", name, err)
		}
	}
}
