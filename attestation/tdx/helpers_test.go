package tdx

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// Pinned verification times. The SPR E4 quote and its collateral were
// captured in June 2023 (go-tdx-guest's tests use 2023-07-01); the v5
// sample's PCK certificate is from January 2026 (go-tdx-guest uses
// 2026-02-03).
var (
	timeV4     = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
	timeV5     = time.Date(2026, time.February, 3, 1, 0, 0, 0, time.UTC)
	timeFuture = time.Date(2053, time.July, 1, 1, 0, 0, 0, time.UTC)
)

// vector is a real quote with the collateral captured with it, from
// internal/captures.
type vector struct {
	dir   string
	quote []byte
	col   *attestation.Collateral
	at    time.Time
}

func loadVector(t testing.TB, dir string) vector {
	t.Helper()
	path := t.TempDir()
	if err := captures.WriteTDX(path, dir); err != nil {
		t.Fatal(err)
	}
	q, err := os.ReadFile(filepath.Join(path, "quote.dat"))
	if err != nil {
		t.Fatal(err)
	}
	col, err := LoadCollateralDir(path)
	if err != nil {
		t.Fatal(err)
	}
	at := timeV4
	if dir == "v5" {
		at = timeV5
	}
	return vector{dir: dir, quote: q, col: col, at: at}
}

func at(t time.Time) func() time.Time { return func() time.Time { return t } }

func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func bundle(q []byte, col *attestation.Collateral) *attestation.Bundle {
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.TDX, Evidence: q, Collateral: col}
}

// pcsResponses renders collateral as Intel PCS serves it: bodies, and issuer
// chains URL-encoded in headers (spaces as %20, as in go-tdx-guest's
// testing/test_cases.go), keyed by PCS URL for a PCK with fmspc and ca.
func pcsResponses(col *attestation.Collateral, fmspc, ca string) map[string]pcsResponse {
	enc := func(pem []byte) []string {
		return []string{strings.ReplaceAll(url.QueryEscape(string(pem)), "+", "%20")}
	}
	return map[string]pcsResponse{
		pcs.TcbInfoURL(fmspc): {http.Header{pcs.TcbInfoIssuerChainPhrase: enc(col.TCBInfoIssuerChain)}, col.TCBInfo},
		pcs.QeIdentityURL():   {http.Header{pcs.SgxQeIdentityIssuerChainPhrase: enc(col.QEIdentityIssuerChain)}, col.QEIdentity},
		pcs.PckCrlURL(ca):     {http.Header{pcs.SgxPckCrlIssuerChainPhrase: enc(col.PCKCRLIssuerChain)}, col.PCKCRL},
		rootCRLURL:            {nil, col.RootCACRL},
	}
}

type pcsResponse struct {
	header http.Header
	body   []byte
}

// memGetter serves PCS responses from memory. It implements
// attestation.Getter for the Verifier and go-tdx-guest's
// trust.HTTPSGetter and trust.ContextHTTPSGetter for the library.
type memGetter struct {
	responses map[string]pcsResponse
	calls     int
}

func (g *memGetter) GetContext(ctx context.Context, u string) (map[string][]string, []byte, error) {
	h, b, err := g.Get(ctx, u)
	return h, b, err
}

func (g *memGetter) getLibrary(u string) (map[string][]string, []byte, error) {
	return g.GetContext(context.Background(), u)
}

// Get implements attestation.Getter.
func (g *memGetter) Get(ctx context.Context, u string) (http.Header, []byte, error) {
	g.calls++
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	r, ok := g.responses[u]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", attestation.ErrCollateralUnavailable, u)
	}
	return r.header, r.body, nil
}

// libraryGetter adapts memGetter to go-tdx-guest's trust.HTTPSGetter.
type libraryGetter struct{ *memGetter }

func (g libraryGetter) Get(u string) (map[string][]string, []byte, error) { return g.getLibrary(u) }

func libraryOptions(g *memGetter, now time.Time, collateral bool) *verify.Options {
	root, err := parseRoot()
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return &verify.Options{
		TrustedRoots:  roots,
		GetCollateral: collateral,
		Getter:        libraryGetter{g},
		Now:           &verify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now},
	}
}

func hexString(b []byte) string { return fmt.Sprintf("%x", b) }

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return sortStrings(keys)
}

func sortStrings(s []string) []string {
	s = append([]string(nil), s...)
	slices.Sort(s)
	return s
}
