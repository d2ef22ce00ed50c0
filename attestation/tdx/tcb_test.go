package tdx

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/pcs"

	"github.com/kura-cc/kura/attestation"
)

// tcbCase is what TCB matching needs from a real vector: its inputs and
// its collateral decoded without verification, for tests to modify.
type tcbCase struct {
	in       tcbInputs
	info     pcs.TcbInfo
	qeLevels []pcs.TcbLevel
}

func loadTCBCase(t *testing.T, dir string) tcbCase {
	t.Helper()
	vec := loadVector(t, dir)
	q, err := parseQuote(vec.quote)
	if err != nil {
		t.Fatal(err)
	}
	pck, err := verifyPCKChain(mustRoot(t), q.pckChainPEM())
	if err != nil {
		t.Fatal(err)
	}
	var info pcs.TdxTcbInfo
	var qe pcs.QeIdentity
	if err := json.Unmarshal(vec.col.TCBInfo, &info); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(vec.col.QEIdentity, &qe); err != nil {
		t.Fatal(err)
	}
	return tcbCase{
		in: tcbInputs{
			teeTcbSvn: q.body.teeTcbSvn, cpuSvn: pck.exts.TCB.CPUSvnComponents, pceSvn: pck.exts.TCB.PCESvn,
			qeIsvSvn: q.qeReport().GetIsvSvn(), mrSignerSeam: q.body.mrSignerSeam, seamAttributes: q.body.seamAttributes,
		},
		info:     info.TcbInfo,
		qeLevels: qe.EnclaveIdentity.TcbLevels,
	}
}

func mustRoot(t testing.TB) *x509.Certificate {
	t.Helper()
	root, err := parseRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestV5Collateral shows how far the v5 sample's collateral is genuine: the
// TCB info and QE identity signatures verify under the shipped TCB signing
// certificate, but that certificate expired before the TCB info was
// issued, and TCB matching on the signed contents gives UpToDate.
func TestV5Collateral(t *testing.T) {
	vec := loadVector(t, "v5")
	root := mustRoot(t)
	info, err := verifyTCBInfo(root, vec.col.TCBInfo, vec.col.TCBInfoIssuerChain)
	if err != nil {
		t.Fatalf("v5 tcb info signature: %v", err)
	}
	if !info.signer.NotAfter.Before(info.info.IssueDate) {
		t.Errorf("signing certificate valid until %v, tcb info issued %v: expected the certificate to expire first", info.signer.NotAfter, info.info.IssueDate)
	}
	if err := info.window.check("tcb info", timeV5); !errors.Is(err, attestation.ErrCollateralExpired) {
		t.Errorf("v5 tcb info at %v: %v, want ErrCollateralExpired", timeV5, err)
	}
	qe, err := verifyQEIdentity(root, vec.col.QEIdentity, vec.col.QEIdentityIssuerChain)
	if err != nil {
		t.Fatalf("qe identity signature: %v", err)
	}
	q, _ := parseQuote(vec.quote)
	pck, _ := verifyPCKChain(root, q.pckChainPEM())
	if err := checkTCBInfoMatches(&info.info, pck.exts, &q.body); err != nil {
		t.Errorf("v5 tcb info does not match the quote: %v", err)
	}
	report := q.qeReport()
	if err := checkQEIdentityMatches(&qe.id, qeReportFields{report.GetMiscSelect(), report.GetAttributes(), report.GetMrSigner(), report.GetIsvProdId(), report.GetIsvSvn()}); err != nil {
		t.Errorf("v5 QE does not match the qe identity: %v", err)
	}
	c := loadTCBCase(t, "v5")
	ev, err := evaluateTCB(&info.info, qe.id.TcbLevels, c.in)
	if err != nil {
		t.Fatal(err)
	}
	if ev.status != pcs.TcbComponentStatusUpToDate || ev.platform != "UpToDate" || ev.module != "UpToDate" || ev.qe != "UpToDate" {
		t.Errorf("v5 evaluation = %+v, want all UpToDate", ev)
	}
}

func TestEvaluateTCB(t *testing.T) {
	tests := []struct {
		name       string
		dir        string
		modify     func(c *tcbCase)
		wantErr    error
		want       pcs.TcbComponentStatus
		wantModule pcs.TcbComponentStatus
		wantAdv    []string
		wantDate   string
	}{
		{name: "v4 genuine collateral: no level matches", dir: "spr_e4", modify: func(*tcbCase) {}, wantErr: ErrTCBNotSupported},
		{name: "v4 up to date", dir: "spr_e4", modify: func(c *tcbCase) { fit(c, 0) },
			want: "UpToDate", wantAdv: []string{}, wantDate: "2023-02-15T00:00:00Z"},
		{name: "v4 SW hardening needed", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 0)
			l := &c.info.TcbLevels[0]
			l.TcbStatus, l.AdvisoryIDs = "SWHardeningNeeded", []string{"INTEL-SA-00837", "INTEL-SA-00615"}
			c.qeLevels[0].AdvisoryIDs = []string{"INTEL-SA-00615"}
		}, want: "SWHardeningNeeded", wantAdv: []string{"INTEL-SA-00615", "INTEL-SA-00837"}, wantDate: "2023-02-15T00:00:00Z"},
		{name: "v4 out of date: second level", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 1)
		}, want: "OutOfDate", wantAdv: c2(loadTCBCase(t, "spr_e4").info.TcbLevels[1].AdvisoryIDs), wantDate: "2018-01-04T00:00:00Z"},
		{name: "v4 configuration needed, QE out of date", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 0)
			c.info.TcbLevels[0].TcbStatus = "ConfigurationNeeded"
			c.qeLevels = []pcs.TcbLevel{{Tcb: pcs.Tcb{Isvsvn: 5}, TcbStatus: "UpToDate"}, {Tcb: pcs.Tcb{Isvsvn: 2}, TcbStatus: "OutOfDate", TcbDate: "2022-01-01T00:00:00Z"}}
		}, want: "OutOfDateConfigurationNeeded", wantAdv: []string{}, wantDate: "2022-01-01T00:00:00Z"},
		{name: "v4 configuration and SW hardening needed", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 0)
			c.info.TcbLevels[0].TcbStatus = "ConfigurationAndSWHardeningNeeded"
		}, want: "ConfigurationAndSWHardeningNeeded", wantAdv: []string{}, wantDate: "2023-02-15T00:00:00Z"},
		{name: "v4 revoked", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 0)
			c.info.TcbLevels[0].TcbStatus = "Revoked"
		}, wantErr: ErrTCBRevoked},
		{name: "v4 QE revoked", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 0)
			c.qeLevels[0].TcbStatus = "Revoked"
		}, wantErr: ErrTCBRevoked},
		{name: "v4 QE older than every level", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 0)
			c.in.qeIsvSvn = 3
		}, wantErr: ErrTCBNotSupported},
		{name: "v4 PCESVN too old", dir: "spr_e4", modify: func(c *tcbCase) {
			fit(c, 0)
			fit(c, 1)
			c.in.pceSvn = 4
		}, wantErr: ErrTCBNotSupported},
		{name: "v5 genuine levels", dir: "v5", modify: func(*tcbCase) {},
			want: "UpToDate", wantModule: "UpToDate", wantAdv: []string{}, wantDate: "2023-02-15T00:00:00Z"},
		{name: "v5 module out of date", dir: "v5", modify: func(c *tcbCase) {
			c.info.TdxModuleIdentities[1].TcbLevels[0].Tcb.Isvsvn = 12
		}, want: "OutOfDate", wantModule: "OutOfDate", wantAdv: []string{"INTEL-SA-01036", "INTEL-SA-01099"}, wantDate: "2023-02-15T00:00:00Z"},
		{name: "v5 platform out of date, module current", dir: "v5", modify: func(c *tcbCase) {
			c.info.TcbLevels[0].Tcb.SgxTcbcomponents[0].Svn = 9
		}, want: "OutOfDate", wantModule: "UpToDate", wantAdv: c2(loadTCBCase(t, "v5").info.TcbLevels[1].AdvisoryIDs), wantDate: "2023-02-15T00:00:00Z"},
		{name: "v5 no module identity", dir: "v5", modify: func(c *tcbCase) { c.info.TdxModuleIdentities = c.info.TdxModuleIdentities[:1] },
			wantErr: ErrTCBNotSupported},
		{name: "v5 module signer mismatch", dir: "v5", modify: func(c *tcbCase) { c.info.TdxModuleIdentities[1].Mrsigner.Bytes = make([]byte, 47) },
			wantErr: attestation.ErrUntrustedRoot},
		{name: "v5 module too old", dir: "v5", modify: func(c *tcbCase) { c.in.teeTcbSvn = append([]byte{1}, c.in.teeTcbSvn[1:]...) },
			wantErr: ErrTCBNotSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := loadTCBCase(t, tc.dir)
			tc.modify(&c)
			ev, err := evaluateTCB(&c.info, c.qeLevels, c.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("evaluateTCB() error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.status != tc.want || ev.module != tc.wantModule || !slices.Equal(ev.advisoryIDs, tc.wantAdv) || ev.date != tc.wantDate {
				t.Errorf("evaluateTCB() = %+v, want status %s module %q advisories %v date %s", ev, tc.want, tc.wantModule, tc.wantAdv, tc.wantDate)
			}
		})
	}
}

// fit lowers the SVNs TCB level i of the v4 TCB info requires to those of
// the real SPR E4 platform (SGX components from its PCK certificate, TDX
// Late Microcode Update SVN 4), so that the level matches.
func fit(c *tcbCase, i int) {
	l := &c.info.TcbLevels[i].Tcb
	for j := range l.SgxTcbcomponents {
		l.SgxTcbcomponents[j].Svn = min(l.SgxTcbcomponents[j].Svn, c.in.cpuSvn[j])
	}
	l.TdxTcbcomponents[2].Svn = c.in.teeTcbSvn[2]
}

// c2 returns a sorted copy.
func c2(s []string) []string { return sortStrings(s) }

// TestClaimsReportStatus checks a non-UpToDate evaluation reaches the claims
// unchanged, for the policy to judge.
func TestClaimsReportStatus(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	q, _ := parseQuote(vec.quote)
	pck, _ := verifyPCKChain(mustRoot(t), q.pckChainPEM())
	ev := &tcbEvaluation{status: "OutOfDate", platform: "OutOfDate", qe: "UpToDate", date: "2018-01-04T00:00:00Z", advisoryIDs: []string{"INTEL-SA-00106"}}
	c := claims(q, pck, ev)
	tdx := c["tdx"].(map[string]any)
	if c["tcb_status"] != "OutOfDate" || tdx["tcb_status"] != "OutOfDate" || tdx["qe_tcb_status"] != "UpToDate" ||
		tdx["tcb_date"] != "2018-01-04T00:00:00Z" || !slices.Equal(tdx["advisory_ids"].([]string), []string{"INTEL-SA-00106"}) {
		t.Errorf("claims = %v", c)
	}
	if c["measurement"] != tdx["mr_td"] || c["debug"] != false {
		t.Errorf("claims = %v", c)
	}
	// The DEBUG bit is bit 0 of TD_ATTRIBUTES byte 0.
	q.body.tdAttributes = []byte{1, 0, 0, 0x40, 0, 0, 0, 0}
	if c := claims(q, pck, ev); c["debug"] != true {
		t.Errorf("debug claim with TD_ATTRIBUTES.DEBUG set = %v", c["debug"])
	}
}

func TestRevocationList(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	q, _ := parseQuote(vec.quote)
	pck, err := verifyPCKChain(mustRoot(t), q.pckChainPEM())
	if err != nil {
		t.Fatal(err)
	}
	list, err := verifyCRL("PCK CRL", vec.col.PCKCRL, pck.intermediate)
	if err != nil {
		t.Fatal(err)
	}
	if list.revoked(pck.leaf) {
		t.Error("the real PCK certificate is on the real CRL")
	}
	revoked := &x509.Certificate{SerialNumber: new(big.Int).Set(list.list.RevokedCertificateEntries[0].SerialNumber)}
	if !list.revoked(revoked) {
		t.Error("a listed serial number is not reported revoked")
	}
	if err := list.window.check("PCK CRL", time.Date(2023, 7, 9, 0, 0, 0, 0, time.UTC)); !errors.Is(err, attestation.ErrCollateralExpired) {
		t.Errorf("CRL past nextUpdate: %v, want ErrCollateralExpired", err)
	}
	if _, err := verifyCRL("root CA CRL", vec.col.RootCACRL, pck.intermediate); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("root CA CRL under the PCK CA: %v, want ErrUntrustedRoot", err)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache[int](4)
	for i := range 100 {
		c.put(cacheKey([]byte{byte(i)}), i)
	}
	if len(c.m) != 4 {
		t.Errorf("cache holds %d entries, bound is 4", len(c.m))
	}
	if v, ok := c.get(cacheKey([]byte{99})); !ok || v != 99 {
		t.Errorf("latest entry missing")
	}
	if cacheKey([]byte("ab"), []byte("c")) == cacheKey([]byte("a"), []byte("bc")) {
		t.Error("cache keys are ambiguous")
	}
}

func TestDecodeIssuerChain(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	pemChain := vec.col.TCBInfoIssuerChain
	encoded := pcsResponses(vec.col, "x", "platform")[pcs.TcbInfoURL("x")].header.Get(pcs.TcbInfoIssuerChainPhrase)
	for name, in := range map[string][]byte{"pem": pemChain, "url-encoded": []byte(encoded)} {
		if got := decodeIssuerChain(in); string(got) != string(pemChain) {
			t.Errorf("%s: decoded chain differs", name)
		}
	}
}
