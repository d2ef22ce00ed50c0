package attestation

import (
	"bytes"
	"errors"
	"testing"
)

// TestTPMBundleCheck checks that a tpm bundle needs its vtpm member, that
// its event logs round-trip and are bounded, and that only tpm bundles may
// carry event logs.
func TestTPMBundleCheck(t *testing.T) {
	good := func() *Bundle {
		return &Bundle{Version: BundleVersion, TEE: TPM, Evidence: []byte("ak"), VTPM: &VTPM{
			Quote: []byte("q"), Signature: []byte("s"), PCRs: [][]byte{bytes.Repeat([]byte{1}, 32)},
			EventLog: []byte("log"), IMALog: []byte("10 x ima-ng sha256:00 /bin/sh\n"),
		}}
	}
	data, err := good().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.VTPM.EventLog, []byte("log")) || !bytes.Equal(got.VTPM.IMALog, good().VTPM.IMALog) {
		t.Errorf("event logs did not round-trip: %+v", got.VTPM)
	}
	for name, f := range map[string]func(b *Bundle){
		"no vtpm":             func(b *Bundle) { b.VTPM = nil },
		"oversized event log": func(b *Bundle) { b.VTPM.EventLog = make([]byte, MaxEventLogSize+1) },
		"oversized ima list":  func(b *Bundle) { b.VTPM.IMALog = make([]byte, MaxEventLogSize+1) },
		"event log on azure":  func(b *Bundle) { b.TEE = AzSNPvTPM },
		"td quote on tpm":     func(b *Bundle) { b.VTPM.TDQuote = []byte("td") },
		"no attestation key":  func(b *Bundle) { b.Evidence = nil },
	} {
		b := good()
		f(b)
		if err := b.Check(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
