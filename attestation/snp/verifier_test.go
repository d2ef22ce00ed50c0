package snp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"maps"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	test "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

var (
	milanVCEKURL = "https://kdsintf.amd.com/vcek/v1/Milan/3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"
	commonKeys   = []string{"debug", "insecure", "measurement", "platform_id", "report_data", "snp", "tee"}
	snpKeys      = []string{"author_key_digest", "chip_id", "committed_tcb", "current_tcb", "family_id", "guest_svn",
		"host_data", "id_key_digest", "image_id", "launch_tcb", "migrate_ma", "platform_info", "policy", "product",
		"report_id", "reported_tcb", "signer", "smt_allowed", "version", "vmpl"}
	tcbKeys = []string{"bootloader", "fmc", "microcode", "snp", "tee"}
)

func TestVerifyVectors(t *testing.T) {
	report, vcek, askArk := captures.SNPMilan()
	milanHex := *milanBundle(t)
	milanHex.Evidence = []byte("\n " + hex.EncodeToString(report) + "\n")
	milanDER := *milanBundle(t)
	milanDER.Certs = vcek
	milanVCEKOnlyPEM := *milanBundle(t)
	milanVCEKOnlyPEM.Certs = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vcek})
	milanChainFirst := *milanBundle(t)
	milanChainFirst.Certs = append(append([]byte{}, askArk...), milanVCEKOnlyPEM.Certs...)

	for _, tc := range []struct {
		name        string
		b           *attestation.Bundle
		now         time.Time
		measurement string
		chipID      string
		reportData  string
		product     string
		version     int
		debug       bool
		reportedTCB map[string]any
	}{
		{name: "milan pem bundle", b: milanBundle(t), now: milanTime},
		{name: "milan hex report", b: &milanHex, now: milanTime},
		{name: "milan single der vcek", b: &milanDER, now: milanTime},
		{name: "milan vcek pem only", b: &milanVCEKOnlyPEM, now: milanTime},
		{name: "milan chain before vcek", b: &milanChainFirst, now: milanTime},
		{name: "genoa tsm cert table", b: genoaBundle(t), now: genoaTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := newTestVerifier(t, tc.now, nil).Verify(context.Background(), tc.b)
			if err != nil {
				t.Fatalf("Verify: %v\nchecks: %+v", err, res.Checks)
			}
			if res.TEE != attestation.SNP || len(res.ReportData) != 64 || res.Failed() {
				t.Fatalf("result %+v", res)
			}
			if got := slices.Sorted(maps.Keys(res.Claims)); !slices.Equal(got, commonKeys) {
				t.Errorf("claim keys %v, want %v", got, commonKeys)
			}
			s := res.Claims["snp"].(map[string]any)
			if got := slices.Sorted(maps.Keys(s)); !slices.Equal(got, snpKeys) {
				t.Errorf("snp claim keys %v, want %v", got, snpKeys)
			}
			for _, k := range []string{"current_tcb", "reported_tcb", "committed_tcb", "launch_tcb"} {
				if got := slices.Sorted(maps.Keys(s[k].(map[string]any))); !slices.Equal(got, tcbKeys) {
					t.Errorf("%s keys %v, want %v", k, got, tcbKeys)
				}
			}
			if hex.EncodeToString(res.ReportData) != res.Claims["report_data"] {
				t.Errorf("ReportData %x, claim %v", res.ReportData, res.Claims["report_data"])
			}
			var want map[string][2]any // claim: got, want
			if s["product"] == "Milan" {
				want = map[string][2]any{
					"measurement": {res.Claims["measurement"], "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"},
					"platform_id": {res.Claims["platform_id"], "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"},
					"report_data": {res.Claims["report_data"], "0102030405" + zeros(59)},
					"debug":       {res.Claims["debug"], true},
					"version":     {s["version"], 2},
					"policy":      {s["policy"], uint64(0xb0000)},
					"signer":      {s["signer"], "vcek"},
					"smt_allowed": {s["smt_allowed"], true},
					"reported":    {s["reported_tcb"].(map[string]any)["microcode"], 68},
					"snp spl":     {s["reported_tcb"].(map[string]any)["snp"], 5},
				}
			} else {
				want = map[string][2]any{
					"product":     {s["product"], "Genoa"},
					"measurement": {res.Claims["measurement"], "7699e6ac12ccdfd1dfac70e649ce1f046cb2afbb003438f4cdddfe2ccbe182fa5ffbe8dcdb930454324e10c52c788980"},
					"platform_id": {res.Claims["platform_id"], "7b1584c94c7a426164b2db1198903db0685b7f5fdabdf42d4da981b0de521d1d5d5d8a91932bbbc1b13f5d5cae45a7304657d9a9d01c50c435670f0562a5970b"},
					"debug":       {res.Claims["debug"], false},
					"version":     {s["version"], 3},
					"policy":      {s["policy"], uint64(0x30000)},
					"platform":    {s["platform_info"], uint64(0x25)},
					"reported":    {s["reported_tcb"].(map[string]any)["microcode"], 84},
					"snp spl":     {s["reported_tcb"].(map[string]any)["snp"], 23},
					"bootloader":  {s["reported_tcb"].(map[string]any)["bootloader"], 10},
				}
			}
			for k, gw := range want {
				if gw[0] != gw[1] {
					t.Errorf("claim %s = %#v, want %#v", k, gw[0], gw[1])
				}
			}
			for _, c := range res.Checks {
				if c.Name == checkRevocation && c.Status != attestation.Skipped {
					t.Errorf("revocation check %v without CheckRevocations", c.Status)
				}
			}
		})
	}
}

func zeros(n int) string { return hex.EncodeToString(make([]byte, n)) }

func TestVerifyCacheHit(t *testing.T) {
	v := newTestVerifier(t, milanTime, nil)
	ctx := context.Background()
	for i := range 2 {
		res, err := v.Verify(ctx, milanBundle(t))
		if err != nil {
			t.Fatalf("Verify #%d: %v", i, err)
		}
		cached := false
		for _, c := range res.Checks {
			if c.Name == checkChain && bytes.Contains([]byte(c.Detail), []byte("cached")) {
				cached = true
			}
		}
		if cached != (i == 1) {
			t.Errorf("Verify #%d: chain cached = %v", i, cached)
		}
	}
	// A tampered report with a cached chain still fails.
	b := milanBundle(t)
	b.Evidence[0x90] ^= 1
	if _, err := v.Verify(ctx, b); !errors.Is(err, attestation.ErrBadSignature) {
		t.Errorf("tampered report with cached chain: %v, want ErrBadSignature", err)
	}
	// The cache does not outlive the chain's validity.
	late := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v.now = func() time.Time { return late }
	if _, err := v.Verify(ctx, milanBundle(t)); !errors.Is(err, attestation.ErrCollateralExpired) {
		t.Errorf("cached chain after expiry: %v, want ErrCollateralExpired", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	v := newTestVerifier(t, milanTime, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), milanBundle(t)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestVerifyTampered(t *testing.T) {
	genoaTable := func(t testing.TB, mutate func(vcek []byte) []byte) []byte {
		t.Helper()
		table := new(abi.CertTable)
		if err := table.Unmarshal(genoaBundle(t).Certs); err != nil {
			t.Fatal(err)
		}
		for i, e := range table.Entries {
			b, _ := pem.Decode(e.RawCert)
			der := b.Bytes
			if e.GUID.String() == abi.VcekGUID {
				der = mutate(bytes.Clone(der))
			}
			table.Entries[i].RawCert = der
		}
		return table.Marshal()
	}
	_, vcek, askArk := captures.SNPMilan()
	selfARK, selfARKKey := selfSigned(t, "ARK-Milan", nil, nil)
	selfASK, _ := selfSigned(t, "SEV-Milan", selfARK, selfARKKey)
	genoaVCEK := func() []byte {
		var der []byte
		genoaTable(t, func(v []byte) []byte { der = v; return v })
		return der
	}()

	for _, tc := range []struct {
		name   string
		genoa  bool
		now    time.Time
		getter attestation.Getter
		mutate func(b *attestation.Bundle)
		want   error
	}{
		{name: "measurement bit", mutate: func(b *attestation.Bundle) { b.Evidence[0x90] ^= 0x01 }, want: attestation.ErrBadSignature},
		{name: "report_data bit", mutate: func(b *attestation.Bundle) { b.Evidence[0x50] ^= 0x80 }, want: attestation.ErrBadSignature},
		{name: "reported tcb", mutate: func(b *attestation.Bundle) { b.Evidence[0x187]++ }, want: attestation.ErrBadSignature},
		{name: "signature r", mutate: func(b *attestation.Bundle) { b.Evidence[0x2a0] ^= 0x01 }, want: attestation.ErrBadSignature},
		{name: "signature s", mutate: func(b *attestation.Bundle) { b.Evidence[0x2a0+72] ^= 0x01 }, want: attestation.ErrBadSignature},
		{name: "genoa measurement bit", genoa: true, mutate: func(b *attestation.Bundle) { b.Evidence[0xbf] ^= 0x01 }, want: attestation.ErrBadSignature},
		{name: "vcek signature byte in cert table", genoa: true, mutate: func(b *attestation.Bundle) {
			b.Certs = genoaTable(t, func(d []byte) []byte { d[len(d)-10] ^= 1; return d })
		}, want: attestation.ErrBadSignature},
		{name: "vcek serial byte in cert table", genoa: true, mutate: func(b *attestation.Bundle) {
			b.Certs = genoaTable(t, func(d []byte) []byte { d[15] ^= 1; return d })
		}, want: attestation.ErrBadSignature},
		{name: "vcek der length in cert table", genoa: true, mutate: func(b *attestation.Bundle) {
			b.Certs = genoaTable(t, func(d []byte) []byte { d[2] ^= 0x40; return d })
		}, want: attestation.ErrMalformed},
		{name: "vcek of another chip", now: genoaTime, mutate: func(b *attestation.Bundle) { b.Certs = genoaVCEK }, want: attestation.ErrBadSignature},
		{name: "self-made ark", mutate: func(b *attestation.Bundle) {
			b.Certs = slices.Concat(vcek, milanASKPEM(t, askArk), pemOf(selfARK))
		}, want: attestation.ErrUntrustedRoot},
		{name: "ask signed by self-made ark", mutate: func(b *attestation.Bundle) {
			b.Certs = slices.Concat(vcek, pemOf(selfASK))
		}, want: attestation.ErrUntrustedRoot},
		{name: "vcek issued by self-made ask", mutate: func(b *attestation.Bundle) {
			b.Certs = pemOf(selfSignedVCEK(t, selfASK))
		}, want: attestation.ErrUntrustedRoot},
		{name: "truncated report", mutate: func(b *attestation.Bundle) { b.Evidence = b.Evidence[:1000] }, want: attestation.ErrMalformed},
		{name: "oversized report", mutate: func(b *attestation.Bundle) { b.Evidence = append(b.Evidence, 0) }, want: attestation.ErrMalformed},
		{name: "empty evidence", mutate: func(b *attestation.Bundle) { b.Evidence = nil }, want: attestation.ErrMalformed},
		{name: "bad hex", mutate: func(b *attestation.Bundle) { b.Evidence = bytes.Repeat([]byte("zz"), abi.ReportSize) }, want: attestation.ErrMalformed},
		{name: "report version 1", mutate: func(b *attestation.Bundle) { b.Evidence[0] = 1 }, want: attestation.ErrMalformed},
		{name: "reserved bits set", mutate: func(b *attestation.Bundle) { b.Evidence[0x4d] = 1 }, want: attestation.ErrMalformed},
		{name: "unsigned report", mutate: func(b *attestation.Bundle) { b.Evidence[0x48] = 7 << 2 }, want: attestation.ErrBadSignature},
		{name: "wrong tee", mutate: func(b *attestation.Bundle) { b.TEE = attestation.TDX }, want: attestation.ErrMalformed},
		{name: "garbage certs", mutate: func(b *attestation.Bundle) { b.Certs = []byte("-----BEGIN CERTIFICATE-----\nnope") }, want: attestation.ErrMalformed},
		{name: "two vceks", mutate: func(b *attestation.Bundle) { b.Certs = slices.Concat(vcek, vcek) }, want: attestation.ErrMalformed},
		{name: "empty certs offline", mutate: func(b *attestation.Bundle) { b.Certs = nil }, want: attestation.ErrCollateralUnavailable},
		{name: "only ask and ark offline", mutate: func(b *attestation.Bundle) { b.Certs = askArk }, want: attestation.ErrCollateralUnavailable},
		{name: "getter without the vcek", getter: &mapGetter{}, mutate: func(b *attestation.Bundle) { b.Certs = nil }, want: attestation.ErrCollateralUnavailable},
		{name: "getter serving garbage", getter: &mapGetter{bodies: map[string][]byte{milanVCEKURL: []byte("<html>")}},
			mutate: func(b *attestation.Bundle) { b.Certs = nil }, want: attestation.ErrCollateralUnavailable},
		{name: "after vcek expiry", now: time.Date(2029, time.September, 25, 0, 0, 0, 0, time.UTC), want: attestation.ErrCollateralExpired},
		{name: "before genoa vcek", genoa: true, now: time.Date(2025, time.April, 1, 0, 0, 0, 0, time.UTC), want: attestation.ErrCollateralExpired},
		{name: "after ark expiry", genoa: true, now: time.Date(2050, time.January, 1, 0, 0, 0, 0, time.UTC), want: attestation.ErrCollateralExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, now := milanBundle(t), milanTime
			if tc.genoa {
				b, now = genoaBundle(t), genoaTime
			}
			if !tc.now.IsZero() {
				now = tc.now
			}
			if tc.mutate != nil {
				tc.mutate(b)
			}
			res, err := newTestVerifier(t, now, tc.getter).Verify(context.Background(), b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
			if res == nil || !res.Failed() || res.Claims != nil {
				t.Errorf("result on failure: %+v", res)
			}
			t.Logf("%v", err)
		})
	}
}

func TestVerifyGetter(t *testing.T) {
	_, vcek, _ := captures.SNPMilan()
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"der", vcek},
		{"pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vcek})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &mapGetter{bodies: map[string][]byte{milanVCEKURL: tc.body}}
			b := milanBundle(t)
			b.Certs = nil
			res, err := newTestVerifier(t, milanTime, g).Verify(context.Background(), b)
			if err != nil {
				t.Fatalf("Verify: %v (asked %v)", err, g.asked)
			}
			if !slices.Equal(g.asked, []string{milanVCEKURL}) {
				t.Errorf("getter asked for %v, want the VCEK URL", g.asked)
			}
			if res.Checks[1].Name != checkCerts || !bytes.Contains([]byte(res.Checks[1].Detail), []byte("getter")) {
				t.Errorf("certificates check %+v", res.Checks[1])
			}
		})
	}
}

func TestVerifyRevocation(t *testing.T) {
	// A CRL signed by a key that is not AMD's ARK, then an unreachable CRL.
	arkCRLURL := "https://kdsintf.amd.com/vcek/v1/Milan/crl"
	selfARK, selfKey := selfSigned(t, "ARK-Milan", nil, nil)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: milanTime.Add(-time.Hour), NextUpdate: milanTime.Add(24 * time.Hour),
	}, selfARK, selfKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		getter attestation.Getter
		want   error
	}{
		{"no getter", nil, attestation.ErrCollateralUnavailable},
		{"crl unavailable", &mapGetter{}, attestation.ErrCollateralUnavailable},
		{"crl not signed by ark", &mapGetter{bodies: map[string][]byte{arkCRLURL: crl}}, attestation.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(Config{Getter: tc.getter, Now: func() time.Time { return milanTime }, CheckRevocations: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.Verify(context.Background(), milanBundle(t))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestVerifyFakeChain drives the checks real evidence cannot reach (TCB and
// CHIP_ID mismatches, VLEK signing, revocation) with go-sev-guest's test-only
// AMD chain in place of the embedded roots.
func TestVerifyFakeChain(t *testing.T) {
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	now := created.Add(time.Hour)
	hwid := bytes.Repeat([]byte{0xab}, abi.ChipIDSize)
	tcb := kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 8, UcodeSpl: 115}
	b := &test.AmdSignerBuilder{
		Keys: test.DefaultAmdKeys(), ProductName: "Milan-B0", CSPID: "kura",
		ArkCreationTime: created, AskCreationTime: created, AsvkCreationTime: created,
		VcekCreationTime: created, VlekCreationTime: created,
		VcekCustom: test.CertOverride{Extensions: test.CustomExtensions(tcb, hwid, "", "Milan-B0")},
		VlekCustom: test.CertOverride{Extensions: test.CustomExtensions(tcb, nil, "kura", "Milan")},
	}
	signer, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	tcbValue, _ := kds.ComposeTCBParts(tcb)
	makeReport := func(key abi.ReportSigner, edit func(r []byte)) []byte {
		full := test.CreateRawReport(&test.TestReportOptions{
			ReportData: []byte("kura fake chain"),
			SignerInfo: abi.SignerInfo{SigningKey: key},
		})
		r := full[:abi.ReportSize]
		for _, off := range []int{0x38, 0x180, 0x1e0, 0x1f0} { // current, reported, committed, launch TCB
			binary.LittleEndian.PutUint64(r[off:], uint64(tcbValue))
		}
		copy(r[0x1a0:0x1e0], hwid)
		if edit != nil {
			edit(r)
		}
		R, S, err := signer.Sign(abi.SignedComponent(r))
		if err != nil {
			t.Fatal(err)
		}
		if err := abi.SetSignature(R, S, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	vcekChain := slices.Concat(pemOf(signer.Vcek), pemOf(signer.Ask), pemOf(signer.Ark))
	vlekChain := slices.Concat(pemOf(signer.Vlek), pemOf(signer.Asvk), pemOf(signer.Ark))
	newVerifier := func(g attestation.Getter, revocations bool) *Verifier {
		v, err := NewVerifier(Config{Getter: g, Now: func() time.Time { return now }, CheckRevocations: revocations})
		if err != nil {
			t.Fatal(err)
		}
		v.roots = map[string]*productRoots{"Milan": {
			line: "Milan", ark: signer.Ark, ask: signer.Ask, asvk: signer.Asvk,
			sev: &trust.AMDRootCerts{Product: "Milan", ProductLine: "Milan",
				ProductCerts: &trust.ProductCerts{Ark: signer.Ark, Ask: signer.Ask, Asvk: signer.Asvk}},
		}}
		return v
	}
	crl := func(revoked ...*big.Int) []byte {
		var entries []x509.RevocationListEntry
		for _, sn := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: sn, RevocationTime: created})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: big.NewInt(1), ThisUpdate: created, NextUpdate: now.Add(time.Hour), RevokedCertificateEntries: entries,
		}, signer.Ark, signer.Keys.Ark)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	crlURL := signer.Ask.CRLDistributionPoints[0]

	for _, tc := range []struct {
		name        string
		key         abi.ReportSigner
		edit        func(r []byte)
		certs       []byte
		getter      attestation.Getter
		revocations bool
		want        error
		wantSkip    string
	}{
		{name: "vcek ok", certs: vcekChain},
		{name: "vlek ok with asvk in evidence", key: abi.VlekReportSigner, certs: vlekChain, wantSkip: checkChipID},
		{name: "vlek ok with embedded asvk", key: abi.VlekReportSigner, certs: pemOf(signer.Vlek), wantSkip: checkChipID},
		{name: "vlek missing", key: abi.VlekReportSigner, certs: vcekChain, want: attestation.ErrCollateralUnavailable},
		{name: "chip id masked", certs: vcekChain, edit: func(r []byte) { clear(r[0x1a0:0x1e0]) }, wantSkip: checkChipID},
		{name: "reported tcb above vcek", certs: vcekChain, edit: func(r []byte) { r[0x187]++ }, want: attestation.ErrBadSignature},
		{name: "current tcb below vcek", certs: vcekChain, edit: func(r []byte) { r[0x3f]-- }, want: attestation.ErrBadSignature},
		{name: "chip id is not hwid", certs: vcekChain, edit: func(r []byte) { r[0x1a0] ^= 1 }, want: attestation.ErrBadSignature},
		{name: "committed above current", certs: vcekChain, edit: func(r []byte) { r[0x1ec] = 9 }, want: attestation.ErrBadSignature},
		{name: "crl clean", certs: vcekChain, revocations: true, getter: &mapGetter{bodies: map[string][]byte{crlURL: crl()}}},
		{name: "crl revokes ask", certs: vcekChain, revocations: true, getter: &mapGetter{bodies: map[string][]byte{crlURL: crl(signer.Ask.SerialNumber)}}, want: attestation.ErrUntrustedRoot},
		{name: "crl revokes vcek", certs: vcekChain, revocations: true, getter: &mapGetter{bodies: map[string][]byte{crlURL: crl(big.NewInt(0))}}, want: attestation.ErrUntrustedRoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := &attestation.Bundle{Version: 1, TEE: attestation.SNP, Evidence: makeReport(tc.key, tc.edit), Certs: tc.certs}
			res, err := newVerifier(tc.getter, tc.revocations).Verify(context.Background(), bundle)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Verify: %v, want %v\nchecks: %+v", err, tc.want, res.Checks)
			}
			if tc.wantSkip != "" && !slices.ContainsFunc(res.Checks, func(c attestation.Check) bool {
				return c.Name == tc.wantSkip && c.Status == attestation.Skipped
			}) {
				t.Errorf("check %q not skipped: %+v", tc.wantSkip, res.Checks)
			}
			if err == nil && tc.key == abi.VlekReportSigner && res.Claims["snp"].(map[string]any)["signer"] != "vlek" {
				t.Errorf("signer claim %v", res.Claims["snp"].(map[string]any)["signer"])
			}
			t.Logf("%v", err)
		})
	}
}

func TestNewBundle(t *testing.T) {
	report, vcek, askArk := captures.SNPMilan()
	for _, tc := range []struct {
		name         string
		report       []byte
		certs        []byte
		wantErr      error
		wantCertsPEM int
	}{
		{name: "raw report, der vcek + pem chain", report: report, certs: slices.Concat(vcek, askArk), wantCertsPEM: 3},
		{name: "hex report, no certs", report: []byte(hex.EncodeToString(report) + "\n"), wantCertsPEM: 0},
		{name: "cert table", report: report, certs: genoaBundle(t).Certs, wantCertsPEM: 3},
		{name: "short report", report: report[:100], wantErr: attestation.ErrMalformed},
		{name: "not a certificate", report: report, certs: []byte{0x30, 0x03, 1, 2, 3}, wantErr: attestation.ErrMalformed},
		{name: "private key pem", report: report, certs: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), wantErr: attestation.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBundle(tc.report, tc.certs)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("NewBundle: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if err := b.Check(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Evidence, report) || !b.RuntimeData.Empty() {
				t.Errorf("bundle %+v", b)
			}
			if n := bytes.Count(b.Certs, []byte("BEGIN CERTIFICATE")); n != tc.wantCertsPEM {
				t.Errorf("%d PEM certificates, want %d", n, tc.wantCertsPEM)
			}
		})
	}
}

func TestParseTSMReport(t *testing.T) {
	good := captures.SNPGenoaTSM()
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"real capture", good, nil},
		{"tdx provider", bytes.Replace(good, []byte(`"provider":"sev_guest`), []byte(`"provider":"tdx_guest`), 1), attestation.ErrMalformed},
		{"not json", []byte("{"), attestation.ErrMalformed},
		{"bad base64", bytes.Replace(good, []byte(`"outblob":"`), []byte(`"outblob":"!`), 1), attestation.ErrMalformed},
		{"short outblob", []byte(`{"provider":"sev_guest","outblob":"AAAA","auxblob":""}`), attestation.ErrMalformed},
		{"trailing newline", append(bytes.Clone(good), "\n\t "...), nil},
		{"trailing junk", append(bytes.Clone(good), "junk"...), attestation.ErrMalformed},
		{"trailing second object", append(bytes.Clone(good), good...), attestation.ErrMalformed},
		{"trailing NUL", append(bytes.Clone(good), 0), attestation.ErrMalformed},
		{"trailing brace", append(bytes.Clone(good), '}'), attestation.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTSMReport(tc.data)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("ParseTSMReport: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEmbeddedRoots(t *testing.T) {
	roots, err := loadRoots()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Milan", "Genoa", "Turin"} {
		r := roots[line]
		if r == nil {
			t.Fatalf("no %s roots", line)
		}
		for _, c := range []*x509.Certificate{r.ask, r.asvk} {
			if err := c.CheckSignatureFrom(r.ark); err != nil {
				t.Errorf("%s: %s not signed by %s: %v", line, c.Subject.CommonName, r.ark.Subject.CommonName, err)
			}
		}
		if r.ark.Subject.CommonName != "ARK-"+line || r.asvk.Subject.CommonName != "SEV-VLEK-"+line {
			t.Errorf("%s: ARK %q, ASVK %q", line, r.ark.Subject.CommonName, r.asvk.Subject.CommonName)
		}
	}
}

// selfSigned returns a CA certificate with AMD's subject layout and the
// given common name, self-signed or signed by parent.
func selfSigned(t testing.TB, cn string, parent *x509.Certificate, parentKey *rsa.PrivateKey) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               amdName(cn),
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// selfSignedVCEK returns the real Milan VCEK's contents re-signed by a
// stranger's key under the issuer name of ica.
func selfSignedVCEK(t testing.TB, ica *x509.Certificate) *x509.Certificate {
	t.Helper()
	_, vcekDER, _ := captures.SNPMilan()
	vcek, err := x509.ParseCertificate(vcekDER)
	if err != nil {
		t.Fatal(err)
	}
	icaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fakeICA := *ica
	fakeICA.RawSubject = nil
	fakeICA.Subject = amdName("SEV-Stranger")
	fakeICA.PublicKey = &icaKey.PublicKey
	tmpl := *vcek
	tmpl.SignatureAlgorithm = x509.SHA384WithRSAPSS
	tmpl.ExtraExtensions = nil
	for _, e := range vcek.Extensions {
		if strings.HasPrefix(e.Id.String(), "1.3.6.1.4.1.3704.") { // AMD's KDS arc
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, e)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &fakeICA, vcek.PublicKey, icaKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func amdName(cn string) pkix.Name {
	return pkix.Name{
		CommonName: cn, Country: []string{"US"}, Locality: []string{"Santa Clara"}, Province: []string{"CA"},
		Organization: []string{"Advanced Micro Devices"}, OrganizationalUnit: []string{"Engineering"},
	}
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// milanASKPEM returns the first (ASK) block of AMD's Milan cert_chain.
func milanASKPEM(t testing.TB, askArk []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(askArk)
	if b == nil {
		t.Fatal("no ASK in cert_chain")
	}
	return pem.EncodeToMemory(b)
}
