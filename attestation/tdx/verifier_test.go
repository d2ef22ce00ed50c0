package tdx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/verify"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// checkStatuses renders a result's checks as "name=status" for comparison.
func checkStatuses(res *attestation.Result) string {
	if res == nil {
		return ""
	}
	var s []string
	for _, c := range res.Checks {
		s = append(s, c.Name+"="+string(c.Status))
	}
	return strings.Join(s, " ")
}

const (
	allPassedToTCBLevel = "quote parse=passed pck chain=passed qe report=passed quote signature=passed tcb info=passed qe identity=passed"
	signatureOnly       = "quote parse=passed pck chain=passed qe report=passed quote signature=passed tcb info=skipped qe identity=skipped revocation=skipped tcb level=skipped"
)

// TestVerifyVectors runs the real quotes with their real collateral. What
// is true of them at their pinned times:
//
//   - spr_e4 (v4, production): signatures, PCK chain, TCB info, QE identity
//     and CRLs all verify, but no TCB level of the TCB info matches: the
//     TCB info (tcbEvaluationDataNumber 15) requires TDX Late Microcode
//     Update SVN 5 and the quote's TEE_TCB_SVN[2] is 4. Intel's algorithm
//     calls this an unsupported TCB, so verification fails at "tcb level"
//     (go-tdx-guest agrees: "no matching TCB level found").
//   - v5: signatures and PCK chain verify at 2026-02-03; its TCB info is
//     genuinely signed (TestV5Collateral) but the TCB signing certificate
//     shipped with it expired on 2025-05-21, and the only QE identity
//     available is from 2023, so the collateral is expired at any time the
//     PCK certificate (issued 2026-01-27) is valid.
func TestVerifyVectors(t *testing.T) {
	tests := []struct {
		name     string
		dir      string
		cfg      Config
		noCol    bool
		wantErr  []error
		wantRun  string
		wantGold string
	}{
		{name: "v4 full collateral", dir: "spr_e4", cfg: Config{CheckRevocations: true},
			wantErr: []error{ErrTCBNotSupported, attestation.ErrUntrustedRoot},
			wantRun: allPassedToTCBLevel + " revocation=passed tcb level=failed"},
		{name: "v4 signature only", dir: "spr_e4", cfg: Config{AllowMissingCollateral: true}, noCol: true,
			wantRun: signatureOnly, wantGold: "spr_e4/claims.golden.json"},
		{name: "v5 signature only", dir: "v5", cfg: Config{AllowMissingCollateral: true}, noCol: true,
			wantRun: signatureOnly, wantGold: "v5/claims.golden.json"},
		{name: "v5 full collateral", dir: "v5", cfg: Config{},
			wantErr: []error{attestation.ErrCollateralExpired},
			wantRun: "quote parse=passed pck chain=passed qe report=passed quote signature=passed tcb info=failed"},
		{name: "v4 no collateral", dir: "spr_e4", noCol: true,
			wantErr: []error{attestation.ErrCollateralUnavailable},
			wantRun: "quote parse=passed pck chain=passed qe report=passed quote signature=passed tcb info=failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vec := loadVector(t, tc.dir)
			tc.cfg.Now = at(vec.at)
			v := newTestVerifier(t, tc.cfg)
			col := vec.col
			if tc.noCol {
				col = nil
			}
			res, err := v.Verify(context.Background(), bundle(vec.quote, col))
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Verify() error = %v, want %v", err, want)
				}
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("Verify() error = %v", err)
			}
			if got := checkStatuses(res); got != tc.wantRun {
				t.Errorf("checks:\n got %s\nwant %s", got, tc.wantRun)
			}
			if tc.wantGold != "" {
				golden(t, tc.wantGold, res)
			}
		})
	}
}

// golden compares the result's claims and report data with a golden file.
func golden(t *testing.T, name string, res *attestation.Result) {
	t.Helper()
	got, err := json.MarshalIndent(map[string]any{"claims": res.Claims, "report_data": res.ReportData}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("claims differ from %s (run with -update after checking):\n%s", path, got)
	}
}

func TestClaimsKeys(t *testing.T) {
	for _, dir := range []string{"spr_e4", "v5"} {
		vec := loadVector(t, dir)
		v := newTestVerifier(t, Config{Now: at(vec.at), AllowMissingCollateral: true})
		res, err := v.Verify(context.Background(), bundle(vec.quote, nil))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"debug", "insecure", "measurement", "report_data", "tcb_status", "tdx", "tee"}
		if got := sortedKeys(res.Claims); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: claim keys %v, want %v", dir, got, want)
		}
		wantTDX := []string{"advisory_ids", "fmspc", "mr_config_id", "mr_owner", "mr_owner_config", "mr_seam", "mr_signer_seam", "mr_td",
			"qe_tcb_status", "quote_version", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "seam_attributes", "tcb_date", "tcb_status", "td_attributes", "tee_tcb_svn", "xfam"}
		if dir == "v5" {
			wantTDX = append(wantTDX, "mr_service_td", "tee_tcb_svn2")
		}
		got := sortedKeys(res.Claims["tdx"].(map[string]any))
		if strings.Join(got, ",") != strings.Join(sortStrings(wantTDX), ",") {
			t.Errorf("%s: tdx claim keys %v, want %v", dir, got, sortStrings(wantTDX))
		}
		if res.Claims["tcb_status"] != "" || res.Claims["insecure"] != false || res.Claims["tee"] != "tdx" {
			t.Errorf("%s: common claims %v", dir, res.Claims)
		}
		if len(res.ReportData) != attestation.ReportDataSize {
			t.Errorf("%s: ReportData is %d bytes", dir, len(res.ReportData))
		}
	}
}

// TestTampering flips one bit at a time in the v4 quote or its collateral
// and expects the specific failure.
func TestTampering(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	// Offsets in a v4 quote: 48-byte header, then the TD quote body.
	const (
		offTeeTcbSvn  = 48
		offTdAttrs    = 168
		offMrTd       = 184
		offRtmr1      = 424
		offReportData = 568
		offSignature  = 636
		offQEReport   = 770
	)
	flip := func(off int) func(q []byte, c *attestation.Collateral) {
		return func(q []byte, c *attestation.Collateral) { q[off] ^= 1 }
	}
	tests := []struct {
		name      string
		tamper    func(q []byte, c *attestation.Collateral)
		now       time.Time
		wantErr   error
		wantCheck string
	}{
		{"mr_td", flip(offMrTd + 7), timeV4, attestation.ErrBadSignature, checkSignature},
		{"report_data", flip(offReportData + 63), timeV4, attestation.ErrBadSignature, checkSignature},
		{"rtmr1", flip(offRtmr1), timeV4, attestation.ErrBadSignature, checkSignature},
		{"tee_tcb_svn", flip(offTeeTcbSvn + 2), timeV4, attestation.ErrBadSignature, checkSignature},
		// Setting TD_ATTRIBUTES.DEBUG would change only the "debug" claim,
		// but the quote signature covers it, so the flip is refused.
		{"debug flag", flip(offTdAttrs), timeV4, attestation.ErrBadSignature, checkSignature},
		{"quote signature", flip(offSignature + 40), timeV4, attestation.ErrBadSignature, checkSignature},
		{"qe report", flip(offQEReport + 100), timeV4, attestation.ErrBadSignature, checkQEReport},
		{"pck certificate", tamperPCKSignature, timeV4, attestation.ErrBadSignature, checkPCK},
		{"tcb info body", func(_ []byte, c *attestation.Collateral) {
			c.TCBInfo = bytes.Replace(c.TCBInfo, []byte(`"tcbEvaluationDataNumber":15`), []byte(`"tcbEvaluationDataNumber":14`), 1)
		}, timeV4, attestation.ErrBadSignature, checkTCBInfo},
		{"tcb info signature", func(_ []byte, c *attestation.Collateral) {
			i := bytes.Index(c.TCBInfo, []byte(`"signature":"`)) + len(`"signature":"`)
			c.TCBInfo[i+3] = map[bool]byte{true: '0', false: '1'}[c.TCBInfo[i+3] != '0']
		}, timeV4, attestation.ErrBadSignature, checkTCBInfo},
		{"qe identity body", func(_ []byte, c *attestation.Collateral) {
			c.QEIdentity = bytes.Replace(c.QEIdentity, []byte(`"isvprodid":2`), []byte(`"isvprodid":3`), 1)
		}, timeV4, attestation.ErrBadSignature, checkQEID},
		{"tcb info issuer chain not a TCB signer", func(_ []byte, c *attestation.Collateral) {
			c.TCBInfoIssuerChain = c.PCKCRLIssuerChain
		}, timeV4, attestation.ErrUntrustedRoot, checkTCBInfo},
		{"tcb info of the v5 platform (not yet valid in 2023)", func(_ []byte, c *attestation.Collateral) {
			c.TCBInfo = loadVector(t, "v5").col.TCBInfo
		}, timeV4, attestation.ErrCollateralExpired, checkTCBInfo},
		{"far future", func([]byte, *attestation.Collateral) {}, timeFuture, attestation.ErrCollateralExpired, checkPCK},
		{"tcb info expired", func([]byte, *attestation.Collateral) {}, time.Date(2023, 7, 20, 0, 0, 0, 0, time.UTC), attestation.ErrCollateralExpired, checkTCBInfo},
		{"qe identity expired", func([]byte, *attestation.Collateral) {}, time.Date(2023, 7, 10, 0, 0, 0, 0, time.UTC), attestation.ErrCollateralExpired, checkQEID},
		{"tcb info not yet valid", func([]byte, *attestation.Collateral) {}, time.Date(2023, 6, 10, 0, 0, 0, 0, time.UTC), attestation.ErrCollateralExpired, checkTCBInfo},
		{"missing tcb info", func(_ []byte, c *attestation.Collateral) { c.TCBInfo = nil }, timeV4, attestation.ErrCollateralUnavailable, checkTCBInfo},
		{"missing qe identity", func(_ []byte, c *attestation.Collateral) { c.QEIdentity = nil }, timeV4, attestation.ErrCollateralUnavailable, checkQEID},
		{"missing root CA CRL", func(_ []byte, c *attestation.Collateral) { c.RootCACRL = nil }, timeV4, attestation.ErrCollateralUnavailable, checkRevoke},
		{"tampered PCK CRL", func(_ []byte, c *attestation.Collateral) { c.PCKCRL[len(c.PCKCRL)-5] ^= 1 }, timeV4, attestation.ErrBadSignature, checkRevoke},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := bytes.Clone(vec.quote)
			col := cloneCollateral(vec.col)
			tc.tamper(q, col)
			v := newTestVerifier(t, Config{Now: at(tc.now), CheckRevocations: true})
			res, err := v.Verify(context.Background(), bundle(q, col))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tc.wantErr)
			}
			last := res.Checks[len(res.Checks)-1]
			if last.Name != tc.wantCheck || last.Status != attestation.Failed {
				t.Errorf("failing check = %s %s, want %s failed (%s)", last.Name, last.Status, tc.wantCheck, checkStatuses(res))
			}
			if res.Claims != nil {
				t.Errorf("claims returned for a refused quote")
			}
		})
	}
}

// tamperPCKSignature changes one base64 character near the end of the first
// certificate of the quote's PCK chain, inside the leaf's ECDSA signature.
func tamperPCKSignature(q []byte, _ *attestation.Collateral) {
	end := bytes.Index(q, []byte("-----END CERTIFICATE-----"))
	i := end - 12
	for q[i] == '\n' || q[i] == '=' {
		i--
	}
	if q[i] == 'A' {
		q[i] = 'B'
	} else {
		q[i] = 'A'
	}
}

func cloneCollateral(c *attestation.Collateral) *attestation.Collateral {
	return &attestation.Collateral{
		TCBInfo: bytes.Clone(c.TCBInfo), TCBInfoIssuerChain: bytes.Clone(c.TCBInfoIssuerChain),
		QEIdentity: bytes.Clone(c.QEIdentity), QEIdentityIssuerChain: bytes.Clone(c.QEIdentityIssuerChain),
		PCKCRL: bytes.Clone(c.PCKCRL), PCKCRLIssuerChain: bytes.Clone(c.PCKCRLIssuerChain), RootCACRL: bytes.Clone(c.RootCACRL),
	}
}

func TestMalformed(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	v5 := loadVector(t, "v5")
	tests := []struct {
		name  string
		quote []byte
	}{
		{"empty", nil},
		{"one byte", []byte{4}},
		{"truncated header", vec.quote[:20]},
		{"truncated body", vec.quote[:600]},
		{"truncated signed data", vec.quote[:2000]},
		{"truncated v5", v5.quote[:3000]},
		{"truncated before chain end", vec.quote[:4800]},
		{"oversized", append(bytes.Clone(vec.quote), make([]byte, MaxQuoteSize)...)},
		{"version 3", append([]byte{3, 0}, vec.quote[2:]...)},
		{"garbage", bytes.Repeat([]byte{0xa5}, 5000)},
		{"not tdx", append([]byte{4, 0, 2, 0, 0, 0, 0, 0}, vec.quote[8:]...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{Now: at(timeV4), AllowMissingCollateral: true})
			res, err := v.Verify(context.Background(), bundle(tc.quote, nil))
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("Verify() error = %v, want ErrMalformed", err)
			}
			if got := checkStatuses(res); got != "quote parse=failed" {
				t.Errorf("checks = %s", got)
			}
		})
	}
}

// TestGetter fetches the collateral by PCS URL, with issuer chains in
// URL-encoded headers, instead of from the bundle.
func TestGetter(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	g := &memGetter{responses: pcsResponses(vec.col, "50806f000000", "platform")}
	v := newTestVerifier(t, Config{Now: at(timeV4), Getter: g, CheckRevocations: true})
	for range 3 {
		res, err := v.Verify(context.Background(), bundle(vec.quote, nil))
		if !errors.Is(err, ErrTCBNotSupported) {
			t.Fatalf("Verify() error = %v, want ErrTCBNotSupported", err)
		}
		if got, want := checkStatuses(res), allPassedToTCBLevel+" revocation=passed tcb level=failed"; got != want {
			t.Errorf("checks:\n got %s\nwant %s", got, want)
		}
	}
	if g.calls != 12 {
		t.Errorf("getter called %d times, want 12 (4 per verification; caching is by content, not URL)", g.calls)
	}

	empty := &memGetter{}
	v = newTestVerifier(t, Config{Now: at(timeV4), Getter: empty})
	if _, err := v.Verify(context.Background(), bundle(vec.quote, nil)); !errors.Is(err, attestation.ErrCollateralUnavailable) {
		t.Errorf("empty getter: Verify() error = %v, want ErrCollateralUnavailable", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	v = newTestVerifier(t, Config{Now: at(timeV4), Getter: g})
	if _, err := v.Verify(ctx, bundle(vec.quote, nil)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: Verify() error = %v, want context.Canceled", err)
	}
}

// TestLibraryAgrees checks go-tdx-guest reaches the same verdicts on the
// real vectors, fed the same collateral through the PCS-shaped getter.
func TestLibraryAgrees(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	g := &memGetter{responses: pcsResponses(vec.col, "50806f000000", "platform")}
	opts := libraryOptions(g, timeV4, true)
	opts.CheckRevocations = true
	if err := verify.RawTdxQuote(vec.quote, opts); err == nil || !strings.Contains(err.Error(), "no matching TCB level found") {
		t.Errorf("go-tdx-guest v4 with collateral: %v, want no matching TCB level", err)
	}
	for _, dir := range []string{"spr_e4", "v5"} {
		vec := loadVector(t, dir)
		if err := verify.RawTdxQuote(vec.quote, libraryOptions(g, vec.at, false)); err != nil {
			t.Errorf("go-tdx-guest %s without collateral: %v", dir, err)
		}
	}
}

func TestLoadCollateralDir(t *testing.T) {
	captured := t.TempDir()
	if err := captures.WriteTDX(captured, "spr_e4"); err != nil {
		t.Fatal(err)
	}
	col, err := LoadCollateralDir(captured)
	if err != nil {
		t.Fatal(err)
	}
	if len(col.TCBInfo) == 0 || len(col.QEIdentityIssuerChain) == 0 || len(col.RootCACRL) == 0 {
		t.Errorf("collateral fields missing: %+v", col)
	}
	dir := t.TempDir()
	if _, err := LoadCollateralDir(dir); err == nil {
		t.Error("empty directory accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, "tcb_info.json"), col.TCBInfo, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadCollateralDir(dir); err != nil || len(got.TCBInfo) == 0 || got.QEIdentity != nil {
		t.Errorf("partial directory: %v, %+v", err, got)
	}
	if err := os.Mkdir(filepath.Join(dir, "qe_identity.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCollateralDir(dir); err == nil || !strings.Contains(err.Error(), "qe_identity.json") {
		t.Errorf("unreadable file: error %v does not name it", err)
	}
}

func TestNewBundle(t *testing.T) {
	vec := loadVector(t, "v5")
	hexQuote := []byte(strings.ToUpper(hexString(vec.quote)) + "\n")
	for name, in := range map[string][]byte{"raw": vec.quote, "hex": hexQuote} {
		b, err := NewBundle(in, vec.col)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(b.Evidence, vec.quote) || b.TEE != attestation.TDX || !b.RuntimeData.Empty() || b.Collateral != vec.col {
			t.Errorf("%s: bundle %+v", name, b)
		}
	}
	if _, err := NewBundle([]byte("zz"), nil); !errors.Is(err, attestation.ErrMalformed) {
		t.Errorf("garbage: %v, want ErrMalformed", err)
	}
}

func TestWrongTEE(t *testing.T) {
	vec := loadVector(t, "v5")
	b := bundle(vec.quote, nil)
	b.TEE = attestation.SNP
	v := newTestVerifier(t, Config{})
	if _, err := v.Verify(context.Background(), b); !errors.Is(err, attestation.ErrMalformed) {
		t.Errorf("Verify(snp bundle) = %v, want ErrMalformed", err)
	}
}

// TestConcurrentVerify exercises the caches from many goroutines; run with
// -race.
func TestConcurrentVerify(t *testing.T) {
	v4 := loadVector(t, "spr_e4")
	v := newTestVerifier(t, Config{Now: at(timeV4), AllowMissingCollateral: true})
	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 20 {
				if _, e := v.Verify(context.Background(), bundle(v4.quote, nil)); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
