package tdx

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-tdx-guest/verify"
)

// FuzzVerify feeds mutated real quotes to the Verifier (signature-only, so
// mutations reach every check). Nothing may panic, and whatever the Verifier
// accepts go-tdx-guest must accept too.
func FuzzVerify(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "quote.dat"))
	for _, path := range seeds {
		q, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(q)
	}
	if len(seeds) == 0 {
		f.Fatal("no seed quotes in testdata/*/quote.dat")
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
