package bench

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	sevverify "github.com/google/go-sev-guest/verify"
	"github.com/google/go-tdx-guest/pcs"
	tdxverify "github.com/google/go-tdx-guest/verify"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/internal/captures"
)

// AttestConfig configures Attest.
type AttestConfig struct {
	// N is how many verifications one measurement times.
	N int
	// Pairs is how many alternated pairs measure each figure.
	Pairs int
	JSON  bool
}

// Pinned verification times of the captured evidence (see
// internal/captures).
var (
	snpMilanTime = time.Date(2023, time.June, 1, 0, 0, 0, 0, time.UTC)
	tdxV4Time    = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
)

// Attest measures kura's SEV-SNP and TDX verifiers against the libraries
// they build on, verifying the same real captured evidence offline with the
// same roots and collateral, in verifications per second:
//
//   - SNP, cold: snp.Verifier with an empty chain cache (a new Verifier,
//     made outside the timing, for each report) against go-sev-guest's
//     verify.SnpAttestation and validate.SnpAttestation, with the
//     validation options the Verifier uses, on go-sev-guest's Milan vector.
//   - SNP, warm: one snp.Verifier that has verified the vector's chain
//     before, against the same go-sev-guest calls (which keep no state).
//   - TDX, cold and warm: tdx.Verifier (a new one per quote, or one that
//     has verified it before) against go-tdx-guest's verify.RawTdxQuote
//     with collateral from memory, on the Sapphire Rapids v4 quote with its
//     June 2023 collateral. Both check everything up to the TCB level and
//     then find none that matches (see attestation/tdx's TestVerifyVectors),
//     so each verification must end in that finding.
func Attest(ctx context.Context, cfg AttestConfig, w io.Writer) error {
	if cfg.N <= 0 || cfg.Pairs <= 0 {
		return fmt.Errorf("%w: --n and --pairs must be positive", ErrUsage)
	}
	s, err := newSNPBench()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kura-bench-attest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t, err := newTDXBench(dir)
	if err != nil {
		return err
	}
	rate := func(n int, fresh func() (func() error, error)) Variant {
		return func(ctx context.Context) (float64, error) {
			var spent time.Duration
			for range n {
				if err := ctx.Err(); err != nil {
					return 0, err
				}
				verify, err := fresh()
				if err != nil {
					return 0, err
				}
				start := time.Now()
				if err := verify(); err != nil {
					return 0, err
				}
				spent += time.Since(start)
			}
			return float64(n) / spent.Seconds(), nil
		}
	}
	same := func(f func() error) func() (func() error, error) {
		return func() (func() error, error) { return f, nil }
	}
	figs := []struct {
		fig        Figure
		base, kura Variant
	}{
		{Figure{Name: "snp verify, cold", Baseline: "go-sev-guest verify+validate", Unit: "/s", Target: "≥ 1.0×"},
			rate(cfg.N, same(s.library)), rate(cfg.N, s.cold)},
		{Figure{Name: "snp verify, warm", Baseline: "go-sev-guest verify+validate", Unit: "/s", Target: "≥ 2×"},
			rate(cfg.N, same(s.library)), rate(cfg.N, s.warm)},
		{Figure{Name: "tdx verify, cold", Baseline: "go-tdx-guest verify", Unit: "/s", Target: "≥ 1.2×"},
			rate(cfg.N, same(t.library)), rate(cfg.N, t.cold)},
		{Figure{Name: "tdx verify, warm", Baseline: "go-tdx-guest verify", Unit: "/s"},
			rate(cfg.N, same(t.library)), rate(cfg.N, t.warm)},
	}
	out := make([]Figure, len(figs))
	for i := range figs {
		if err := Alternate(ctx, &figs[i].fig, cfg.Pairs, figs[i].base, figs[i].kura); err != nil {
			return err
		}
		out[i] = figs[i].fig
	}
	if !cfg.JSON {
		fmt.Fprintf(w, "%d verifications per measurement, %d alternated pairs; real captured evidence, offline\n", cfg.N, cfg.Pairs)
	}
	return WriteFigures(w, out, cfg.JSON)
}

// snpBench is go-sev-guest's Milan vector and a warm Verifier.
type snpBench struct {
	report, vcek, ask, ark []byte
	bundle                 *attestation.Bundle
	warmV                  *snp.Verifier
}

func newSNPBench() (*snpBench, error) {
	report, vcek, askArk := captures.SNPMilan()
	askBlock, rest := pem.Decode(askArk)
	arkBlock, _ := pem.Decode(rest)
	if askBlock == nil || arkBlock == nil {
		return nil, errors.New("bench: the Milan vector's cert_chain is not two PEM certificates")
	}
	b, err := snp.NewBundle(report, append(append([]byte(nil), vcek...), askArk...))
	if err != nil {
		return nil, err
	}
	s := &snpBench{report: report, vcek: vcek, ask: askBlock.Bytes, ark: arkBlock.Bytes, bundle: b}
	if s.warmV, err = s.verifier(); err != nil {
		return nil, err
	}
	if _, err := s.warmV.Verify(context.Background(), b); err != nil {
		return nil, fmt.Errorf("bench: kura refuses the Milan vector: %w", err)
	}
	if err := s.library(); err != nil {
		return nil, fmt.Errorf("bench: go-sev-guest refuses the Milan vector: %w", err)
	}
	return s, nil
}

func (s *snpBench) verifier() (*snp.Verifier, error) {
	return snp.NewVerifier(snp.Config{Now: func() time.Time { return snpMilanTime }})
}

// cold returns a verification by a new Verifier, whose chain cache is
// empty; making it is not timed.
func (s *snpBench) cold() (func() error, error) {
	v, err := s.verifier()
	if err != nil {
		return nil, err
	}
	return func() error { return s.verify(v) }, nil
}

func (s *snpBench) warm() (func() error, error) {
	return func() error { return s.verify(s.warmV) }, nil
}

func (s *snpBench) verify(v *snp.Verifier) error {
	_, err := v.Verify(context.Background(), s.bundle)
	return err
}

// library is what a user of go-sev-guest alone runs: parse the report,
// verify it with its chain against the embedded AMD roots, and validate it
// with the options snp.Verifier uses (every guest policy permitted, no
// reference values, provisional firmware allowed).
func (s *snpBench) library() error {
	r, err := abi.ReportToProto(s.report)
	if err != nil {
		return err
	}
	att := &spb.Attestation{Report: r, CertificateChain: &spb.CertificateChain{VcekCert: s.vcek, AskCert: s.ask, ArkCert: s.ark}}
	if err := sevverify.SnpAttestation(att, &sevverify.Options{DisableCertFetching: true, Now: snpMilanTime}); err != nil {
		return err
	}
	return validate.SnpAttestation(att, &validate.Options{
		GuestPolicy:               abi.SnpPolicy{SMT: true, MigrateMA: true, Debug: true, CXLAllowed: true},
		PermitProvisionalFirmware: true,
	})
}

// tdxBench is the Sapphire Rapids v4 quote with its collateral, and a warm
// Verifier.
type tdxBench struct {
	quote  []byte
	bundle *attestation.Bundle
	getter pcsGetter
	roots  *x509.CertPool // the Intel SGX Root CA
	warmV  *tdx.Verifier
}

func newTDXBench(dir string) (*tdxBench, error) {
	if err := captures.WriteTDX(dir, "spr_e4"); err != nil {
		return nil, err
	}
	q, err := os.ReadFile(filepath.Join(dir, "quote.dat"))
	if err != nil {
		return nil, err
	}
	col, err := tdx.LoadCollateralDir(dir)
	if err != nil {
		return nil, err
	}
	// The issuer chain ends in the Intel SGX Root CA, which the warm
	// verification below checks is the one kura embeds.
	_, rest := pem.Decode(col.TCBInfoIssuerChain)
	rootBlock, _ := pem.Decode(rest)
	if rootBlock == nil {
		return nil, errors.New("bench: the TDX vector's TCB info issuer chain has no root")
	}
	root, err := x509.ParseCertificate(rootBlock.Bytes)
	if err != nil {
		return nil, err
	}
	t := &tdxBench{
		quote:  q,
		bundle: &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.TDX, Evidence: q, Collateral: col},
		getter: newPCSGetter(col),
		roots:  x509.NewCertPool(),
	}
	t.roots.AddCert(root)
	if t.warmV, err = t.verifier(); err != nil {
		return nil, err
	}
	if err := t.verify(t.warmV); err != nil {
		return nil, err
	}
	if err := t.library(); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tdxBench) verifier() (*tdx.Verifier, error) {
	return tdx.NewVerifier(tdx.Config{Now: func() time.Time { return tdxV4Time }})
}

func (t *tdxBench) cold() (func() error, error) {
	v, err := t.verifier()
	if err != nil {
		return nil, err
	}
	return func() error { return t.verify(v) }, nil
}

func (t *tdxBench) warm() (func() error, error) {
	return func() error { return t.verify(t.warmV) }, nil
}

// verify expects the finding every check before it leads to: no TCB
// level matches.
func (t *tdxBench) verify(v *tdx.Verifier) error {
	if _, err := v.Verify(context.Background(), t.bundle); !errors.Is(err, tdx.ErrTCBNotSupported) {
		return fmt.Errorf("bench: kura on the TDX vector: %v, want %v", err, tdx.ErrTCBNotSupported)
	}
	return nil
}

// library is go-tdx-guest's verification of the quote with its collateral
// (TCB info and QE identity from memory, as from Intel's PCS), against the
// Intel SGX Root CA kura trusts.
func (t *tdxBench) library() error {
	err := tdxverify.RawTdxQuote(t.quote, &tdxverify.Options{
		TrustedRoots:  t.roots,
		GetCollateral: true,
		Getter:        t.getter,
		Now:           &tdxverify.TimeSet{PckCertChain: tdxV4Time, TcbInfo: tdxV4Time, QeIdentity: tdxV4Time, PckCrl: tdxV4Time, RootCaCrl: tdxV4Time},
	})
	if err == nil || !strings.Contains(err.Error(), "no matching TCB level") {
		return fmt.Errorf("bench: go-tdx-guest on the TDX vector: %v, want no matching TCB level", err)
	}
	return nil
}

// pcsGetter serves a TCB info and a QE identity as Intel's PCS does:
// bodies, with issuer chains URL-encoded in headers.
type pcsGetter struct {
	tcbInfo, qeIdentity pcsAnswer
}

type pcsAnswer struct {
	header map[string][]string
	body   []byte
}

func newPCSGetter(col *attestation.Collateral) pcsGetter {
	enc := func(pem []byte) []string {
		return []string{strings.ReplaceAll(url.QueryEscape(string(pem)), "+", "%20")}
	}
	return pcsGetter{
		tcbInfo:    pcsAnswer{http.Header{pcs.TcbInfoIssuerChainPhrase: enc(col.TCBInfoIssuerChain)}, col.TCBInfo},
		qeIdentity: pcsAnswer{http.Header{pcs.SgxQeIdentityIssuerChainPhrase: enc(col.QEIdentityIssuerChain)}, col.QEIdentity},
	}
}

// Get implements go-tdx-guest's trust.HTTPSGetter.
func (g pcsGetter) Get(u string) (map[string][]string, []byte, error) {
	switch {
	case u == pcs.QeIdentityURL():
		return g.qeIdentity.header, g.qeIdentity.body, nil
	case strings.HasPrefix(u, pcs.TcbInfoURL("")):
		return g.tcbInfo.header, g.tcbInfo.body, nil
	}
	return nil, nil, fmt.Errorf("bench: no %s offline", u)
}
