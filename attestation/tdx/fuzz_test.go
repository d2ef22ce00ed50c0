package tdx

import (
	"context"
	"testing"

	"github.com/google/go-tdx-guest/verify"

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
