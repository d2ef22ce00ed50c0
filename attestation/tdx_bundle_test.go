package attestation

import (
	"bytes"
	"errors"
	"testing"
)

// TestTDXEventLogBundle checks that a tdx bundle's CCEL log round-trips,
// is bounded, and belongs to tdx bundles only.
func TestTDXEventLogBundle(t *testing.T) {
	good := func() *Bundle {
		return &Bundle{Version: BundleVersion, TEE: TDX, Evidence: []byte("quote"), EventLog: []byte("ccel")}
	}
	data, err := good().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.EventLog, []byte("ccel")) {
		t.Errorf("event_log did not round-trip: %q", got.EventLog)
	}
	for name, f := range map[string]func(b *Bundle){
		"oversized": func(b *Bundle) { b.EventLog = make([]byte, MaxEventLogSize+1) },
		"on snp":    func(b *Bundle) { b.TEE = SNP },
		"on tpm": func(b *Bundle) {
			b.TEE = TPM
			b.VTPM = &VTPM{Quote: []byte("q"), Signature: []byte("s"), PCRs: [][]byte{{1}}}
		},
	} {
		b := good()
		f(b)
		if err := b.Check(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
