package tdx

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/google/go-tdx-guest/verify"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// FuzzVerify feeds mutated real quotes to the Verifier (signature-only, so
// mutations reach every check). Nothing may panic, and whatever the Verifier
// accepts go-tdx-guest must accept too.
func FuzzVerify(f *testing.F) {
	seeds := captures.TDXVectors()
	for _, name := range seeds {
		f.Add(loadVector(f, name).quote)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed quotes in internal/captures")
	}
	v := newTestVerifier(f, Config{Now: at(timeV4), AllowMissingCollateral: true})
	f.Fuzz(func(t *testing.T, q []byte) {
		res, err := v.Verify(context.Background(), bundle(q, nil))
		if err != nil {
			return
		}
		if res.Claims == nil || len(res.ReportData) != 64 {
			t.Fatalf("accepted quote without claims: %+v", res)
		}
		if err := verify.RawTdxQuote(q, libraryOptions(&memGetter{}, timeV4, false)); err != nil {
			t.Fatalf("Verify accepted a quote go-tdx-guest refuses: %v", err)
		}
	})
}

// FuzzParseCCEL checks that parsing a CCEL log either fails or gives the
// input back byte for byte, and that replaying what parses never panics.
func FuzzParseCCEL(f *testing.F) {
	seeds := [][]byte{
		sampleCCEL(),
		testCCEL(),
		append(sampleCCEL(), bytes.Repeat([]byte{0xff}, 64)...),
		append(testCCEL(ccelEvent(4, evEFIAction, []byte("app"))), make([]byte, 16)...),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parseCCEL(data)
		if err != nil {
			return
		}
		if !bytes.Equal(l.Marshal(), data) {
			t.Fatalf("marshal does not give the input back")
		}
		if _, err := replayRTMRs(l); err != nil && !errors.Is(err, attestation.ErrBinding) {
			t.Fatalf("replayRTMRs = %v, want nil or %v", err, attestation.ErrBinding)
		}
	})
}
