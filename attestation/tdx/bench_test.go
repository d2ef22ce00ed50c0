package tdx

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/verify"
)

// The benchmarks verify the real v4 quote with its real collateral at the
// pinned time. Both go-tdx-guest and Verify do all of the work and then
// find no matching TCB level (see TestVerifyVectors), so they are compared
// on the same work.

// BenchmarkGoTdxGuestVerify is go-tdx-guest's RawTdxQuote alone, collateral
// from an in-memory getter.
func BenchmarkGoTdxGuestVerify(b *testing.B) {
	vec := loadVector(b, "spr_e4")
	g := &memGetter{responses: pcsResponses(vec.col, "50806f000000", "platform")}
	for b.Loop() {
		err := verify.RawTdxQuote(vec.quote, libraryOptions(g, timeV4, true))
		if err == nil || !strings.Contains(err.Error(), "no matching TCB level") {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is Verify with warm caches.
func BenchmarkVerify(b *testing.B) {
	vec := loadVector(b, "spr_e4")
	v := newTestVerifier(b, Config{Now: at(timeV4)})
	bun := bundle(vec.quote, vec.col)
	verifyOnce := func() {
		if _, err := v.Verify(context.Background(), bun); !errors.Is(err, ErrTCBNotSupported) {
			b.Fatal(err)
		}
	}
	verifyOnce()
	for b.Loop() {
		verifyOnce()
	}
}

// BenchmarkVerifyCold is Verify with empty caches.
func BenchmarkVerifyCold(b *testing.B) {
	vec := loadVector(b, "spr_e4")
	bun := bundle(vec.quote, vec.col)
	for b.Loop() {
		v := newTestVerifier(b, Config{Now: at(timeV4)})
		if _, err := v.Verify(context.Background(), bun); !errors.Is(err, ErrTCBNotSupported) {
			b.Fatal(err)
		}
	}
}
