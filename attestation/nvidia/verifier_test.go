package nvidia

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
)

func checkNames(res *attestation.Result, status attestation.CheckStatus) []string {
	var out []string
	for _, c := range res.Checks {
		if c.Status == status {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestVerifyVector verifies nvtrust's H100 report and compares its claims
// with what nvtrust and Trustee decode from it.
func TestVerifyVector(t *testing.T) {
	report, chain, roots, nonce := vector(t)
	res, err := newVerifier(t, Config{Roots: roots}).VerifyReport(context.Background(), report, chain, nonce)
	if err != nil {
		t.Fatalf("VerifyReport: %v; checks %+v", err, res.Checks)
	}
	if got, want := checkNames(res, attestation.Passed), []string{checkParse, checkChain, checkSignature, checkNonce, checkFWID}; !slices.Equal(got, want) {
		t.Errorf("passed checks %v, want %v", got, want)
	}
	if got := checkNames(res, attestation.Skipped); len(got) != 0 {
		t.Errorf("skipped checks %v, want none", got)
	}
	if res.TEE != attestation.NVIDIA || !bytes.Equal(res.ReportData, append(bytes.Clone(nonce), make([]byte, 32)...)) {
		t.Errorf("TEE %q, report data %x: want nvidia and the nonce zero-padded to 64 bytes", res.TEE, res.ReportData)
	}

	c := res.Claims
	eq := func(name string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	eq("tee", c["tee"], "nvidia")
	eq("insecure", c["insecure"], false)
	eq("nonce", c["nonce"], hex.EncodeToString(nonce))
	eq("report_data", c["report_data"], hex.EncodeToString(nonce)+strings.Repeat("00", 32))
	eq("responder_nonce", c["responder_nonce"], "b4b8a06aaaa35542839388e159d447a5d6f6194998fd86513e2d591ccf640985")
	eq("driver_version", c["driver_version"], "550.90.07")
	eq("vbios_version", c["vbios_version"], "96.00.9f.00.01")
	eq("project", c["project"], "1010")
	eq("project_sku", c["project_sku"], "0200")
	eq("project_sku_mod", c["project_sku_mod"], "0000")
	eq("chip_sku", c["chip_sku"], "882")
	eq("chip_sku_mod", c["chip_sku_mod"], "0")
	eq("board_id", c["board_id"], "b1030000")
	eq("gpu_info", c["gpu_info"], "8001000000000000")
	eq("cpr_info", c["cpr_info"], "00c00100")
	eq("nvdec0_status", c["nvdec0_status"], "disabled")
	eq("protected_pcie_status", c["protected_pcie_status"], "55")
	const fwid = "f5c384aebb579217a2c66b17ed0f28e6a9b8d639041acd7b4721cec004f7275494ba94bb5cdfdb3055ee051762b1f75d"
	eq("fwid", c["fwid"], fwid)
	for _, absent := range []string{"cc_mode", "devtools", "feature_flag", "opaque_unknown", "debug"} {
		if _, ok := c[absent]; ok {
			t.Errorf("claims carry %q, which the report does not", absent)
		}
	}

	m := c["measurements"].(map[string]any)
	if len(m) != 64 {
		t.Errorf("%d measurements, want 64", len(m))
	}
	eq("measurements[1]", m["1"], strings.Repeat("00", 48))
	eq("measurements[2]", m["2"], "8048dfd18fe229bf16eb9d30cca0f11a24dafe6eb731de1462984645a0b189b77c4e4e17de727a5e19e3d07de51da338")
	eq("measurements[41]", m["41"], "9d2c6389c070dde430ffd510cad0c546fb9a73b9ee7a478fa804d2ab14c674487abdc7aa12d90215ced4f3678f2765fa")
	eq("measurements[64]", m["64"], strings.Repeat("00", 48))
	counts := c["measurement_count"].([]any)
	if len(counts) != 64 || counts[11] != int64(130) {
		t.Errorf("measurement_count %v: want 64 counts, the 12th 130", counts)
	}

	d := c["device_certificate"].(map[string]any)
	eq("device subject", d["subject"], "SERIALNUMBER=53C22BA15E5D68088282DA074ED9FB37AA585771,CN=GH100 A01 GSP FMC LF,O=NVIDIA Corporation,C=US")
	eq("device issuer", d["issuer"], "SERIALNUMBER=41431D480FE5E87274,CN=GH100 A01 GSP BROM,O=NVIDIA Corporation,C=US")
	eq("device serial", d["serial"], "53c22ba15e5d68088282da074ed9fb37aa585771")
	eq("device ueid", d["ueid"], "478176379286082186618948445787393647364802107249")
	eq("device fwid", d["fwid"], fwid)
}

// measurementOffset is where the value of the vector's i-th measurement
// block (from 0) starts: after the 37-byte request, the 8-byte response
// header, i 55-byte blocks and the block's 4-byte and DMTF 3-byte headers.
func measurementOffset(i int) int { return 37 + 8 + 55*i + 4 + 3 }

// TestVerifyRefused tampers with the vector and checks that each change
// fails with its sentinel, at its check.
func TestVerifyRefused(t *testing.T) {
	report, chain, roots, nonce := vector(t)
	if got := hex.EncodeToString(report[measurementOffset(1) : measurementOffset(1)+4]); got != "8048dfd1" {
		t.Fatalf("measurement 2 starts %s at offset %d, want 8048dfd1", got, measurementOffset(1))
	}
	blocks := splitPEM(t, chain)
	if len(blocks) != 5 {
		t.Fatalf("chain has %d certificates, want 5", len(blocks))
	}
	other := newPKI(t, nil)
	flip := func(off int) []byte {
		b := bytes.Clone(report)
		b[off] ^= 0x01
		return b
	}
	driver := bytes.Index(report, []byte("550.90.07"))
	cases := []struct {
		name   string
		report []byte
		chain  []byte
		roots  []*x509.Certificate
		now    time.Time
		nonce  []byte
		want   error
		check  string
	}{
		{name: "flipped measurement byte", report: flip(measurementOffset(1) + 10), want: attestation.ErrBadSignature, check: checkSignature},
		{name: "flipped last measurement byte", report: flip(measurementOffset(63) + 47), want: attestation.ErrBadSignature, check: checkSignature},
		{name: "flipped signature byte", report: flip(len(report) - 1), want: attestation.ErrBadSignature, check: checkSignature},
		{name: "flipped first signature byte", report: flip(len(report) - SignatureSize), want: attestation.ErrBadSignature, check: checkSignature},
		{name: "flipped request nonce", report: flip(4), nonce: func() []byte { n := bytes.Clone(nonce); n[0] ^= 1; return n }(), want: attestation.ErrBadSignature, check: checkSignature},
		{name: "flipped responder nonce", report: flip(37 + 8 + 55*64), want: attestation.ErrBadSignature, check: checkSignature},
		{name: "changed driver version", report: flip(driver + 2), want: attestation.ErrBadSignature, check: checkSignature},
		{name: "wrong nonce", nonce: bytes.Repeat([]byte{0x93}, 32), want: attestation.ErrBinding, check: checkNonce},
		{name: "short nonce", nonce: nonce[:16], want: attestation.ErrBinding, check: checkNonce},
		{name: "no nonce", nonce: []byte{}, want: attestation.ErrBinding, check: checkNonce},
		{name: "intermediate removed", chain: bytes.Join([][]byte{blocks[0], blocks[2], blocks[3], blocks[4]}, nil), want: attestation.ErrUntrustedRoot, check: checkChain},
		{name: "intermediates removed", chain: bytes.Join([][]byte{blocks[0], blocks[4]}, nil), want: attestation.ErrUntrustedRoot, check: checkChain},
		{name: "leaf alone", chain: blocks[0], want: attestation.ErrUntrustedRoot, check: checkChain},
		{name: "intermediate replaced", chain: bytes.Join([][]byte{blocks[0], pemChain(other.root), blocks[2], blocks[3], blocks[4]}, nil), want: attestation.ErrUntrustedRoot, check: checkChain},
		{name: "leaf replaced", chain: bytes.Join([][]byte{pemChain(other.leaf), blocks[1], blocks[2], blocks[3], blocks[4]}, nil), want: attestation.ErrUntrustedRoot, check: checkChain},
		{name: "wrong root", roots: []*x509.Certificate{other.root}, want: attestation.ErrUntrustedRoot, check: checkChain},
		{name: "no root", roots: []*x509.Certificate{}, want: attestation.ErrUntrustedRoot, check: checkChain},
		{name: "before the Provisioner ICA", now: time.Date(2021, 12, 1, 0, 0, 0, 0, time.UTC), want: attestation.ErrCollateralExpired, check: checkChain},
		{name: "before NVIDIA's CAs", now: time.Date(2020, 11, 1, 0, 0, 0, 0, time.UTC), want: attestation.ErrCollateralExpired, check: checkChain},
		{name: "truncated report", report: report[:len(report)-1], want: attestation.ErrMalformed, check: checkParse},
		{name: "report with a trailing byte", report: append(bytes.Clone(report), 0), want: attestation.ErrMalformed, check: checkParse},
		{name: "oversized report", report: make([]byte, MaxReportSize+1), want: attestation.ErrMalformed, check: checkParse},
		{name: "empty report", report: []byte{}, want: attestation.ErrMalformed, check: checkParse},
		{name: "chain not PEM", chain: []byte("not a certificate"), want: attestation.ErrMalformed, check: checkChain},
		{name: "chain with trailing garbage", chain: append(bytes.Clone(chain), "\ngarbage"...), want: attestation.ErrMalformed, check: checkChain},
		{name: "chain with a key", chain: append(bytes.Clone(chain), "\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"...), want: attestation.ErrMalformed, check: checkChain},
		{name: "oversized chain", chain: append(bytes.Clone(chain), bytes.Repeat([]byte{'\n'}, MaxCertChainSize)...), want: attestation.ErrMalformed, check: checkChain},
		{name: "corrupt certificate", chain: bytes.Replace(chain, []byte("MIID"), []byte("MIIE"), 1), want: attestation.ErrMalformed, check: checkChain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Roots: roots}
			if tc.roots != nil {
				cfg.Roots = tc.roots
			}
			if !tc.now.IsZero() {
				cfg.Now = func() time.Time { return tc.now }
			}
			r, c, n := report, chain, nonce
			if tc.report != nil {
				r = tc.report
			}
			if tc.chain != nil {
				c = tc.chain
			}
			if tc.nonce != nil {
				n = tc.nonce
			}
			res, err := newVerifier(t, cfg).VerifyReport(context.Background(), r, c, n)
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyReport error %v, want %v", err, tc.want)
			}
			if failed := checkNames(res, attestation.Failed); !slices.Equal(failed, []string{tc.check}) {
				t.Errorf("failed checks %v, want [%s]", failed, tc.check)
			}
			if res.Claims != nil || res.ReportData != nil {
				t.Errorf("a refused report gave claims %v, report data %x", res.Claims, res.ReportData)
			}
		})
	}
}

// TestVerifyBuilt verifies reports signed by test keys, to reach what the
// vector cannot: the FWID check's outcomes, keys of the wrong curve, an
// expired root and opaque fields the vector lacks.
func TestVerifyBuilt(t *testing.T) {
	nonce := bytes.Repeat([]byte{0xab}, NonceSize)
	fwid := bytes.Repeat([]byte{0xf1}, 48)
	ctx := context.Background()
	run := func(t *testing.T, p *testPKI, report []byte) (*attestation.Result, error) {
		t.Helper()
		return newVerifier(t, Config{Roots: []*x509.Certificate{p.root}}).VerifyReport(ctx, report, pemChain(p.leaf, p.root), nonce)
	}

	t.Run("matching fwid and every opaque kind", func(t *testing.T) {
		p := newPKI(t, fwid)
		r := testReport(nonce, fwid)
		r.Opaque = append(r.Opaque,
			OpaqueField{ID: 34, Value: []byte{1}},
			OpaqueField{ID: 36, Value: []byte{1}},
			OpaqueField{ID: 22, Value: bytes.Repeat([]byte{0xee}, 16)},
			OpaqueField{ID: 35, Value: []byte("GH100 \x00\x00")},
			OpaqueField{ID: 99, Value: []byte{0xab, 0xcd}},
			OpaqueField{ID: 5, Value: nil},
		)
		res, err := run(t, p, sign(t, r, p.leafKey))
		if err != nil {
			t.Fatalf("VerifyReport: %v; checks %+v", err, res.Checks)
		}
		c := res.Claims
		for name, want := range map[string]any{
			"driver_version": "570.86.15", "vbios_version": "96.00.74.00.1c", "nvdec0_status": "enabled",
			"opaque_data_version": uint64(1), "feature_flag": "MPT", "chip_info": "GH100", "sku": "",
			"fwid": hex.EncodeToString(fwid),
		} {
			if c[name] != want {
				t.Errorf("%s = %#v, want %#v", name, c[name], want)
			}
		}
		if pdis := c["switch_pdi"].([]any); len(pdis) != 2 || pdis[0] != "eeeeeeeeeeeeeeee" {
			t.Errorf("switch_pdi = %v", pdis)
		}
		if counts := c["measurement_count"].([]any); !slices.Equal(counts, []any{int64(1), int64(2), int64(0)}) {
			t.Errorf("measurement_count = %v", counts)
		}
		if u := c["opaque_unknown"].(map[string]any); len(u) != 1 || u["99"] != "abcd" {
			t.Errorf("opaque_unknown = %v", u)
		}
		if d := c["device_certificate"].(map[string]any); d["fwid"] != hex.EncodeToString(fwid) || d["serial"] != "1234" || d["ueid"] != "4660" {
			t.Errorf("device_certificate = %v", d)
		}
	})
	t.Run("no fwid in the report", func(t *testing.T) {
		p := newPKI(t, nil)
		res, err := run(t, p, sign(t, testReport(nonce, nil), p.leafKey))
		if err != nil {
			t.Fatalf("VerifyReport: %v", err)
		}
		if got := checkNames(res, attestation.Skipped); !slices.Equal(got, []string{checkFWID}) {
			t.Errorf("skipped checks %v, want [%s]", got, checkFWID)
		}
		if _, ok := res.Claims["device_certificate"].(map[string]any)["fwid"]; ok {
			t.Error("device_certificate has an fwid the certificate lacks")
		}
	})
	t.Run("feature flag values", func(t *testing.T) {
		p := newPKI(t, nil)
		for v, want := range map[byte]string{0: "SPT", 2: "PPCIE", 7: "unknown (7)"} {
			r := testReport(nonce, nil)
			r.Opaque = append(r.Opaque, OpaqueField{ID: 36, Value: []byte{v, 0, 0, 0}})
			res, err := run(t, p, sign(t, r, p.leafKey))
			if err != nil || res.Claims["feature_flag"] != want {
				t.Errorf("feature flag %d: %v, %v; want %s", v, res.Claims["feature_flag"], err, want)
			}
		}
	})

	refused := []struct {
		name  string
		build func(t *testing.T) (*testPKI, []byte, time.Time)
		want  error
		check string
	}{
		{"fwid mismatch", func(t *testing.T) (*testPKI, []byte, time.Time) {
			p := newPKI(t, fwid)
			return p, sign(t, testReport(nonce, bytes.Repeat([]byte{0xf2}, 48)), p.leafKey), vectorTime
		}, attestation.ErrBadSignature, checkFWID},
		{"fwid the certificate lacks", func(t *testing.T) (*testPKI, []byte, time.Time) {
			p := newPKI(t, nil)
			return p, sign(t, testReport(nonce, fwid), p.leafKey), vectorTime
		}, attestation.ErrBadSignature, checkFWID},
		{"signed by another key", func(t *testing.T) (*testPKI, []byte, time.Time) {
			p := newPKI(t, nil)
			return p, sign(t, testReport(nonce, nil), genKey(t)), vectorTime
		}, attestation.ErrBadSignature, checkSignature},
		{"P-256 device key", func(t *testing.T) (*testPKI, []byte, time.Time) {
			p := newPKI(t, nil)
			k, _ := ecdsa.GenerateKey(elliptic.P256(), randReader{})
			p.leaf = createCert(t, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "p256"},
				NotBefore: p.root.NotBefore, NotAfter: p.root.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature}, p.root, &k.PublicKey, p.rootKey)
			return p, sign(t, testReport(nonce, nil), p.leafKey), vectorTime
		}, attestation.ErrBadSignature, checkSignature},
		{"expired root", func(t *testing.T) (*testPKI, []byte, time.Time) {
			p := newPKI(t, nil)
			rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: p.root.Subject, NotBefore: p.root.NotBefore,
				NotAfter: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
			p.root = createCert(t, rootTmpl, rootTmpl, &p.rootKey.PublicKey, p.rootKey)
			return p, sign(t, testReport(nonce, nil), p.leafKey), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
		}, attestation.ErrCollateralExpired, checkChain},
		{"expired device certificate", func(t *testing.T) (*testPKI, []byte, time.Time) {
			p := newPKI(t, nil)
			return p, sign(t, testReport(nonce, nil), p.leafKey), time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
		}, attestation.ErrCollateralExpired, checkChain},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			p, report, now := tc.build(t)
			v := newVerifier(t, Config{Roots: []*x509.Certificate{p.root}, Now: func() time.Time { return now }})
			res, err := v.VerifyReport(ctx, report, pemChain(p.leaf), nonce)
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyReport error %v, want %v", err, tc.want)
			}
			if failed := checkNames(res, attestation.Failed); !slices.Equal(failed, []string{tc.check}) {
				t.Errorf("failed checks %v, want [%s]", failed, tc.check)
			}
		})
	}
}

// randReader is a deterministic stand-in for crypto/rand where the key's
// secrecy does not matter.
type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func TestLoadRoots(t *testing.T) {
	_, _, roots, _ := vector(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(good, pemChain(roots[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadRoots(good)
	if err != nil || len(got) != 1 || !got[0].Equal(roots[0]) || got[0].Subject.CommonName != "NVIDIA Device Identity CA" {
		t.Fatalf("LoadRoots = %v, %v; want NVIDIA's root", got, err)
	}
	for name, content := range map[string]string{
		"empty.pem":   "",
		"garbage.pem": "garbage",
		"key.pem":     "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"big.pem":     strings.Repeat("\n", MaxCertChainSize+1),
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if roots, err := LoadRoots(path); err == nil {
			t.Errorf("LoadRoots(%s) = %v, want an error", name, roots)
		}
	}
	if _, err := LoadRoots(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("LoadRoots read a missing file")
	}
	if _, err := NewVerifier(Config{Roots: []*x509.Certificate{nil}}); err == nil {
		t.Error("NewVerifier accepted a nil root")
	}
}

// TestVerifyBundle verifies the vector as a bundle, with the embedded
// NVIDIA root: the nonce is left to the caller, as report data, and the
// claims carry one measurement digesting every block.
func TestVerifyBundle(t *testing.T) {
	report, chain, _, nonce := vector(t)
	b := &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.NVIDIA, Evidence: report, Certs: chain}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Config{})
	res, err := v.Verify(context.Background(), b)
	if err != nil {
		t.Fatalf("Verify: %v; checks %+v", err, res.Checks)
	}
	if got := checkNames(res, attestation.Skipped); !slices.Equal(got, []string{checkNonce}) {
		t.Errorf("skipped checks %v, want [%s]", got, checkNonce)
	}
	if !bytes.Equal(res.ReportData[:32], nonce) {
		t.Errorf("report data %x does not start with the nonce", res.ReportData)
	}
	m, _ := res.Claims["measurement"].(string)
	if len(m) != 96 {
		t.Errorf("measurement = %q, want a SHA-384 digest", m)
	}
	b.Evidence = bytes.Clone(report)
	b.Evidence[200] ^= 1
	if _, err := v.Verify(context.Background(), b); !errors.Is(err, attestation.ErrBadSignature) {
		t.Errorf("tampered report: %v, want bad signature", err)
	}
	b.TEE = attestation.TPM
	if _, err := v.Verify(context.Background(), b); !errors.Is(err, attestation.ErrMalformed) {
		t.Errorf("tpm bundle: %v, want malformed", err)
	}
}
