package snp

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// Verification times inside the validity of each vector's VCEK. The vectors
// come from internal/captures.
var (
	milanTime = time.Date(2023, time.June, 1, 0, 0, 0, 0, time.UTC) // VCEK 2022-09-24 to 2029-09-24
	genoaTime = time.Date(2025, time.June, 1, 0, 0, 0, 0, time.UTC) // VCEK 2025-04-20 to 2032-04-20
)

func milanBundle(t testing.TB) *attestation.Bundle {
	t.Helper()
	report, vcek, askArk := captures.SNPMilan()
	b, err := NewBundle(report, append(append([]byte{}, vcek...), askArk...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func genoaBundle(t testing.TB) *attestation.Bundle {
	t.Helper()
	b, err := ParseTSMReport(captures.SNPGenoaTSM())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestVerifier(t testing.TB, now time.Time, g attestation.Getter) *Verifier {
	t.Helper()
	v, err := NewVerifier(Config{Getter: g, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mapGetter serves bodies by URL and records what it was asked for.
type mapGetter struct {
	bodies map[string][]byte
	asked  []string
}

func (g *mapGetter) Get(_ context.Context, url string) (http.Header, []byte, error) {
	g.asked = append(g.asked, url)
	b, ok := g.bodies[url]
	if !ok {
		return nil, nil, &notFound{url}
	}
	return http.Header{}, b, nil
}

type notFound struct{ url string }

func (e *notFound) Error() string { return "not found: " + e.url }
func (e *notFound) Unwrap() error { return attestation.ErrCollateralUnavailable }
