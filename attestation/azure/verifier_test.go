package azure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/internal/captures"
)

// checkRun renders a result's checks as "name=status ...".
func checkRun(res *attestation.Result) string {
	if res == nil {
		return ""
	}
	var parts []string
	for _, c := range res.Checks {
		parts = append(parts, c.Name+"="+string(c.Status))
	}
	return strings.Join(parts, " ")
}

func newVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// snpChecks are the checks attestation/snp records on the captured report.
const snpChecks = "snp report parse=passed snp certificates=passed snp certificate chain=passed snp report signature=passed " +
	"snp tcb vs vcek=passed snp chip id vs hwid=passed snp vendor rules=passed snp revocation=skipped snp vmpl=passed"

// TestVerifyCapturedSNP runs the captured Azure SNP HCL report through the
// verifier. What the captures allow: azure/certs.pem is a genuine Milan
// VCEK chain, but of another chip (its HWID is not the report's CHIP_ID),
// so the real SNP verifier passes the chain and refuses the report
// signature; and the only captured quote is from another VM (its AK is not
// the report's). With a stand-in that accepts the SNP report, the real HCL
// report's binding and AK check out and the other VM's quote is refused.
func TestVerifyCapturedSNP(t *testing.T) {
	hcl, certs := captures.AzureSNPHCLReport()
	attest, sig, pcrs, _ := captureQuote(t)
	b := &attestation.Bundle{Version: 1, TEE: attestation.AzSNPvTPM, Evidence: hcl, Certs: certs,
		VTPM: &attestation.VTPM{Quote: attest, Signature: sig, PCRs: pcrs}}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	t.Run("real snp verifier", func(t *testing.T) {
		res, err := newVerifier(t, Config{SNP: newSNPVerifier(t)}).Verify(context.Background(), b)
		want := "hcl report parse=passed snp report parse=passed snp certificates=passed snp certificate chain=passed snp report signature=failed"
		if !errors.Is(err, attestation.ErrBadSignature) || checkRun(res) != want {
			t.Fatalf("Verify() = %v; checks\n got %s\nwant %s", err, checkRun(res), want)
		}
		// Without the VCEK, offline: collateral unavailable.
		nb := *b
		nb.Certs = nil
		if _, err := newVerifier(t, Config{SNP: newSNPVerifier(t)}).Verify(context.Background(), &nb); !errors.Is(err, attestation.ErrCollateralUnavailable) {
			t.Fatalf("no VCEK: %v, want ErrCollateralUnavailable", err)
		}
	})
	rd := bytes.Clone(hcl[hwAreaOffset+snpReportDataAt : hwAreaOffset+snpReportDataAt+64])
	stand := &fakeHW{tee: attestation.SNP, claims: map[string]any{"tee": "snp"}, reportData: rd}
	v := newVerifier(t, Config{SNP: stand})
	t.Run("stand-in snp verifier", func(t *testing.T) {
		res, err := v.Verify(context.Background(), b)
		want := "hcl report parse=passed snp vmpl=passed runtime data=passed attestation key=passed tpm quote parse=passed tpm quote signature=failed"
		if !errors.Is(err, attestation.ErrBadSignature) || checkRun(res) != want {
			t.Fatalf("Verify() = %v; checks\n got %s\nwant %s", err, checkRun(res), want)
		}
	})
	t.Run("tampered runtime data", func(t *testing.T) {
		nb := *b
		nb.Evidence = bytes.Clone(hcl)
		nb.Evidence[varDataOffset+100] ^= 1
		res, err := v.Verify(context.Background(), &nb)
		if !errors.Is(err, attestation.ErrBinding) || !strings.HasSuffix(checkRun(res), "snp vmpl=passed runtime data=failed") {
			t.Fatalf("Verify() = %v; checks %s", err, checkRun(res))
		}
	})
}

// snpCase is synthetic az-snp-vtpm evidence: the captured SNP report (its
// signature checked by the real SNP verifier) standing for a report whose
// report_data binds runtime data naming testKey, and a quote by testKey.
type snpCase struct {
	runtime []byte
	hcl     []byte
	attest  []byte
	sig     []byte
	pcrs    [][]byte
	certs   []byte
	hw      *fakeHW
}

func newSNPCase(t testing.TB, extraData []byte) *snpCase {
	t.Helper()
	c := &snpCase{runtime: runtimeJSON(&testKey().PublicKey), pcrs: testPCRs()}
	report, certs := genoaReport(t)
	c.hcl, c.certs = makeHCL(report, reportTypeSNP, hashTypeSHA256, c.runtime, 2048), certs
	c.attest, c.sig = makeQuote(t, quoteSpec{key: testKey(), extraData: extraData, pcrs: c.pcrs})
	c.hw = snpFake(t, c.runtime)
	return c
}

func (c *snpCase) bundle() *attestation.Bundle {
	return &attestation.Bundle{Version: 1, TEE: attestation.AzSNPvTPM, Evidence: c.hcl, Certs: c.certs,
		VTPM: &attestation.VTPM{Quote: c.attest, Signature: c.sig, PCRs: c.pcrs}}
}

// TestVerifySNPEndToEnd runs the whole verifier on synthetic evidence built
// around the captured SNP report and checks its claims.
func TestVerifySNPEndToEnd(t *testing.T) {
	extra := bytes.Repeat([]byte{7}, 64)
	c := newSNPCase(t, extra)
	v := newVerifier(t, Config{SNP: c.hw})
	b := c.bundle()
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(context.Background(), b)
	if err != nil {
		t.Fatalf("Verify() = %v; checks %s", err, checkRun(res))
	}
	want := "hcl report parse=passed " + snpChecks + " runtime data=passed attestation key=passed tpm quote parse=passed tpm quote signature=passed pcr digest=passed"
	if got := checkRun(res); got != want {
		t.Errorf("checks:\n got %s\nwant %s", got, want)
	}
	if res.TEE != attestation.AzSNPvTPM || !bytes.Equal(res.ReportData, extra) {
		t.Errorf("result TEE %s, report_data %x", res.TEE, res.ReportData)
	}
	cl := res.Claims
	snpClaims := cl["snp"].(map[string]any)
	vtpm := cl["vtpm"].(map[string]any)
	azure := cl["azure"].(map[string]any)
	pcrs := vtpm["pcrs"].(map[string]any)["sha256"].(map[string]any)
	if cl["tee"] != "az-snp-vtpm" || cl["report_data"] != hex.EncodeToString(extra) || snpClaims["vmpl"] != 0 ||
		len(cl["measurement"].(string)) != 96 || cl["debug"] != false {
		t.Errorf("claims: tee %v, report_data %v, vmpl %v, measurement %v, debug %v", cl["tee"], cl["report_data"], snpClaims["vmpl"], cl["measurement"], cl["debug"])
	}
	if len(pcrs) != 24 || pcrs["7"] != hex.EncodeToString(c.pcrs[7]) || vtpm["extra_data"] != hex.EncodeToString(extra) ||
		vtpm["signature"] != "RSASSA-PKCS1-v1_5 SHA-256" || len(vtpm["ak_sha256"].(string)) != 64 {
		t.Errorf("vtpm claims %v", vtpm)
	}
	d := sha256.Sum256(c.runtime)
	if azure["vm_configuration"].(map[string]any)["secure-boot"] != true || azure["report_type"] != "snp" ||
		!strings.HasPrefix(azure["hardware_report_data"].(string), hex.EncodeToString(d[:])) || azure["runtime_data_hash"] != "SHA-256" {
		t.Errorf("azure claims %v", azure)
	}
	// The claims encode as JSON, as the appraisal and the token need.
	mustJSON(t, cl)

	// A shorter extraData (a bare nonce) is zero-padded.
	c2 := newSNPCase(t, []byte("challenge"))
	res, err = newVerifier(t, Config{SNP: c2.hw}).Verify(context.Background(), c2.bundle())
	if err != nil {
		t.Fatal(err)
	}
	if want := append([]byte("challenge"), make([]byte, 55)...); !bytes.Equal(res.ReportData, want) {
		t.Errorf("report_data %x, want %x", res.ReportData, want)
	}
}

// TestVerifySNPRefuses checks that each way of breaking synthetic
// az-snp-vtpm evidence fails at its check with its error.
func TestVerifySNPRefuses(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name    string
		modify  func(t *testing.T, c *snpCase, b *attestation.Bundle)
		check   string
		wantErr error
	}{
		{"tampered snp report", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.Evidence = bytes.Clone(b.Evidence)
			b.Evidence[hwAreaOffset+0x90] ^= 1 // MEASUREMENT
		}, "snp report signature", attestation.ErrBadSignature},
		{"tampered runtime data", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.Evidence = bytes.Clone(b.Evidence)
			b.Evidence[varDataOffset+bytes.Index(c.runtime, []byte("true"))] = 'T'
		}, checkRuntimeData, attestation.ErrBinding},
		{"report_data not zero after the digest", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			c.hw.reportData[40] = 1
		}, checkRuntimeData, attestation.ErrBinding},
		{"wrong AK", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.VTPM.Quote, b.VTPM.Signature = makeQuote(t, quoteSpec{key: otherKey(), pcrs: c.pcrs})
		}, checkQuoteSig, attestation.ErrBadSignature},
		{"tampered quote", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.VTPM.Quote = bytes.Clone(b.VTPM.Quote)
			b.VTPM.Quote[len(b.VTPM.Quote)-1] ^= 1 // the last byte of pcrDigest
		}, checkQuoteSig, attestation.ErrBadSignature},
		{"tampered signature", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.VTPM.Signature = bytes.Clone(b.VTPM.Signature)
			b.VTPM.Signature[10] ^= 1
		}, checkQuoteSig, attestation.ErrBadSignature},
		{"pcr value not the quoted one", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.VTPM.PCRs = append([][]byte{}, b.VTPM.PCRs...)
			b.VTPM.PCRs[4] = make([]byte, 32)
		}, checkPCRs, attestation.ErrBadSignature},
		{"pcr missing", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.VTPM.PCRs = b.VTPM.PCRs[:23]
		}, checkPCRs, attestation.ErrMalformed},
		{"vmpl 2", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			// The stand-in verifies the genuine report; the HCL report
			// carries a copy claiming VMPL 2.
			report, certs := genoaReport(t)
			c.hw.fixed = &attestation.Bundle{Version: 1, TEE: attestation.SNP, Evidence: report, Certs: certs}
			b.Evidence = bytes.Clone(b.Evidence)
			le.PutUint32(b.Evidence[hwAreaOffset+snpVMPLAt:], 2)
		}, checkVMPL, attestation.ErrUntrustedRoot},
		{"hardware verifier refuses", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			c.hw.err = attestation.ErrCollateralExpired
		}, "snp fake", attestation.ErrCollateralExpired},
		{"truncated hcl report", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.Evidence = b.Evidence[:varDataOffset+10]
		}, checkParse, attestation.ErrMalformed},
		{"oversized hcl report", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.Evidence = append(bytes.Clone(b.Evidence), make([]byte, MaxHCLReportSize)...)
		}, checkParse, attestation.ErrMalformed},
		{"bundle says tdx", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.TEE = attestation.AzTDXvTPM
		}, checkParse, attestation.ErrMalformed},
		{"no vtpm", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.VTPM = nil
		}, checkParse, attestation.ErrMalformed},
		{"plain snp bundle", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			b.TEE = attestation.SNP
		}, checkParse, attestation.ErrMalformed},
		{"runtime data without the AK", func(t *testing.T, c *snpCase, b *attestation.Bundle) {
			rt := bytes.Replace(c.runtime, []byte("HCLAkPub"), []byte("HCLEkPub"), 1)
			report, _ := genoaReport(t)
			b.Evidence = makeHCL(report, reportTypeSNP, hashTypeSHA256, rt, 0)
			d := sha256.Sum256(rt)
			copy(c.hw.reportData, d[:])
		}, checkAK, attestation.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newSNPCase(t, []byte("nonce"))
			b := c.bundle()
			tc.modify(t, c, b)
			res, err := newVerifier(t, Config{SNP: c.hw}).Verify(context.Background(), b)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify() = %v, want %v; checks %s", err, tc.wantErr, checkRun(res))
			}
			if last := res.Checks[len(res.Checks)-1]; last.Name != tc.check || last.Status != attestation.Failed {
				t.Errorf("last check %s=%s, want %s=failed", last.Name, last.Status, tc.check)
			}
			if res.Claims != nil || res.ReportData != nil {
				t.Error("a failed verification returned claims")
			}
		})
	}
}

// TestVerifyHashTypes checks SHA-384 and SHA-512 runtime-data digests.
func TestVerifyHashTypes(t *testing.T) {
	for _, ht := range []uint32{hashTypeSHA384, hashTypeSHA512} {
		c := newSNPCase(t, []byte("nonce"))
		report, _ := genoaReport(t)
		c.hcl = makeHCL(report, reportTypeSNP, ht, c.runtime, 0)
		var d []byte
		if ht == hashTypeSHA384 {
			s := sha512.Sum384(c.runtime)
			d = s[:]
		} else {
			s := sha512.Sum512(c.runtime)
			d = s[:]
		}
		c.hw.reportData = make([]byte, 64)
		copy(c.hw.reportData, d)
		res, err := newVerifier(t, Config{SNP: c.hw}).Verify(context.Background(), c.bundle())
		if err != nil {
			t.Fatalf("hash type %d: %v", ht, err)
		}
		if got := res.Claims["azure"].(map[string]any)["runtime_data_hash"]; got != map[uint32]string{2: "SHA-384", 3: "SHA-512"}[ht] {
			t.Errorf("hash type %d: runtime_data_hash %v", ht, got)
		}
	}
}

// sprQuote returns go-tdx-guest's real v4 quote and a TDX verifier that
// checks its signatures at its pinned time without collateral (its TCB
// info matches no TCB level: attestation/tdx TestVerifyVectors).
func sprQuote(t testing.TB) ([]byte, *tdx.Verifier) {
	t.Helper()
	dir := t.TempDir()
	if err := captures.WriteTDX(dir, "spr_e4"); err != nil {
		t.Fatal(err)
	}
	q, err := os.ReadFile(filepath.Join(dir, "quote.dat"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := tdx.NewVerifier(tdx.Config{AllowMissingCollateral: true, Now: func() time.Time { return time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	return q, v
}

// TestVerifyTDX checks the az-tdx-vtpm path: the captured TDX HCL report
// without a TD quote (refused: nothing vouches for a TD report alone); the
// same report with a real TD quote of another TD (refused: not its quote);
// a TD report made from that real quote's fields (quote and match pass,
// the runtime-data binding cannot); and synthetic evidence around the
// captured TD report with a stand-in TDX verifier, end to end.
func TestVerifyTDX(t *testing.T) {
	ctx := context.Background()
	hcl := captures.AzureTDXHCLReport()
	q, tdxV := sprQuote(t)
	attest, sig := makeQuote(t, quoteSpec{key: testKey(), extraData: []byte("nonce"), pcrs: testPCRs()})
	vtpm := func(tdQuote []byte) *attestation.VTPM {
		return &attestation.VTPM{Quote: attest, Signature: sig, PCRs: testPCRs(), TDQuote: tdQuote}
	}
	v := newVerifier(t, Config{TDX: tdxV})

	t.Run("no td quote", func(t *testing.T) {
		res, err := v.Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: hcl, VTPM: vtpm(nil)})
		if !errors.Is(err, attestation.ErrUntrustedRoot) || checkRun(res) != "hcl report parse=passed td quote=failed" {
			t.Fatalf("Verify() = %v; checks %s", err, checkRun(res))
		}
	})
	t.Run("td report inconsistent", func(t *testing.T) {
		bad := bytes.Clone(hcl)
		bad[hwAreaOffset+tdrTDInfo+20] ^= 1 // MRTD, not matching TEE_INFO_HASH
		res, err := v.Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: bad, VTPM: vtpm(q)})
		if !errors.Is(err, attestation.ErrMalformed) || checkRun(res) != "hcl report parse=failed" {
			t.Fatalf("Verify() = %v; checks %s", err, checkRun(res))
		}
	})
	tdxChecks := "tdx quote parse=passed tdx pck chain=passed tdx qe report=passed tdx quote signature=passed " +
		"tdx tcb info=skipped tdx qe identity=skipped tdx revocation=skipped tdx tcb level=skipped"
	t.Run("another td's quote", func(t *testing.T) {
		res, err := v.Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: hcl, VTPM: vtpm(q)})
		if want := "hcl report parse=passed " + tdxChecks + " td report vs quote=failed"; !errors.Is(err, attestation.ErrBinding) || checkRun(res) != want {
			t.Fatalf("Verify() = %v; checks\n got %s\nwant %s", err, checkRun(res), want)
		}
	})
	t.Run("td report of the real quote", func(t *testing.T) {
		qres, err := tdxV.Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.TDX, Evidence: q})
		if err != nil {
			t.Fatal(err)
		}
		td := tdReportFrom(t, qres.Claims["tdx"].(map[string]any), qres.ReportData)
		ev := makeHCL(td, reportTypeTDX, hashTypeSHA256, runtimeJSON(&testKey().PublicKey), 0)
		res, err := v.Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: ev, VTPM: vtpm(q)})
		if want := "hcl report parse=passed " + tdxChecks + " td report vs quote=passed runtime data=failed"; !errors.Is(err, attestation.ErrBinding) || checkRun(res) != want {
			t.Fatalf("Verify() = %v; checks\n got %s\nwant %s", err, checkRun(res), want)
		}
		// One field changed in the TD report: not the quote's.
		td[tdrTDInfo+20] ^= 1
		fixTDHashes(td)
		ev = makeHCL(td, reportTypeTDX, hashTypeSHA256, runtimeJSON(&testKey().PublicKey), 0)
		res, err = v.Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: ev, VTPM: vtpm(q)})
		if !errors.Is(err, attestation.ErrBinding) || !strings.HasSuffix(checkRun(res), "td report vs quote=failed") {
			t.Fatalf("changed MRTD: %v; checks %s", err, checkRun(res))
		}
	})
	t.Run("end to end with a stand-in tdx verifier", func(t *testing.T) {
		runtime := runtimeJSON(&testKey().PublicKey)
		td := bytes.Clone(hcl[hwAreaOffset : hwAreaOffset+tdReportSize])
		d := sha256.Sum256(runtime)
		copy(td[tdrReportData:], d[:])
		clear(td[tdrReportData+32 : tdrReportData+64])
		fake := &fakeHW{tee: attestation.TDX, claims: tdxClaimsOf(t, td), reportData: td[tdrReportData : tdrReportData+64]}
		b := &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: makeHCL(td, reportTypeTDX, hashTypeSHA256, runtime, 2600), VTPM: vtpm([]byte("td quote"))}
		if err := b.Check(); err != nil {
			t.Fatal(err)
		}
		res, err := newVerifier(t, Config{TDX: fake}).Verify(ctx, b)
		if err != nil {
			t.Fatalf("Verify() = %v; checks %s", err, checkRun(res))
		}
		want := "hcl report parse=passed td report vs quote=passed runtime data=passed attestation key=passed tpm quote parse=passed tpm quote signature=passed pcr digest=passed"
		if checkRun(res) != want {
			t.Errorf("checks:\n got %s\nwant %s", checkRun(res), want)
		}
		if res.Claims["tee"] != "az-tdx-vtpm" || res.Claims["tcb_status"] != "UpToDate" || res.Claims["azure"].(map[string]any)["report_type"] != "tdx" {
			t.Errorf("claims %v", res.Claims)
		}
		// The TD quote's MRTD differs from the TD report's.
		fake.claims = tdxClaimsOf(t, td)
		fake.claims["tdx"].(map[string]any)["mr_td"] = strings.Repeat("00", 48)
		if _, err := newVerifier(t, Config{TDX: fake}).Verify(ctx, b); !errors.Is(err, attestation.ErrBinding) {
			t.Fatalf("MRTD mismatch: %v, want ErrBinding", err)
		}
	})
	t.Run("collateral failure propagates", func(t *testing.T) {
		strict, err := tdx.NewVerifier(tdx.Config{Now: func() time.Time { return time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC) }})
		if err != nil {
			t.Fatal(err)
		}
		_, err = newVerifier(t, Config{TDX: strict}).Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: hcl, VTPM: vtpm(q)})
		if !errors.Is(err, attestation.ErrCollateralUnavailable) {
			t.Fatalf("Verify() = %v, want ErrCollateralUnavailable", err)
		}
	})
	t.Run("no tdx verifier", func(t *testing.T) {
		c := newSNPCase(t, nil)
		_, err := newVerifier(t, Config{SNP: c.hw}).Verify(ctx, &attestation.Bundle{Version: 1, TEE: attestation.AzTDXvTPM, Evidence: hcl, VTPM: vtpm(q)})
		if !errors.Is(err, attestation.ErrMalformed) {
			t.Fatalf("Verify() = %v, want ErrMalformed", err)
		}
	})
}

// TestNewVerifier checks that a Verifier needs a hardware verifier.
func TestNewVerifier(t *testing.T) {
	if _, err := NewVerifier(Config{}); err == nil {
		t.Error("NewVerifier accepted no hardware verifier")
	}
}
