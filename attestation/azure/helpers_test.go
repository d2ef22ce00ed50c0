package azure

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/internal/captures"
)

// snpTime is inside the validity of azure/certs.pem's VCEK (2023-01-01 to
// 2030-01-01); the SNP HCL report's VM reported its time as 2023-03-12.
var snpTime = time.Date(2023, time.June, 1, 0, 0, 0, 0, time.UTC)

// testKey and otherKey are RSA-2048 attestation keys made for these tests
// (openssl genrsa), read from testdata: generating keys is slow, and very
// slow in coverage-instrumented fuzz workers.
var (
	testKey  = sync.OnceValue(func() *rsa.PrivateKey { return readKey("testdata/test-ak.pem") })
	otherKey = sync.OnceValue(func() *rsa.PrivateKey { return readKey("testdata/other-ak.pem") })
)

func readKey(path string) *rsa.PrivateKey {
	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		panic(path + ": no PEM block")
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		panic(err)
	}
	return k
}

func newSNPVerifier(t testing.TB) *snp.Verifier {
	t.Helper()
	v, err := snp.NewVerifier(snp.Config{Now: func() time.Time { return snpTime }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// captureQuote returns the captured vTPM quote with its signature as a
// TPMT_SIGNATURE (RSASSA, SHA-256: what the capture's raw signature is),
// its PCR values and the key that signed it.
func captureQuote(t testing.TB) (attest, sig []byte, pcrs [][]byte, ak *rsa.PublicKey) {
	t.Helper()
	attest, raw, pcrs, akPEM := captures.AzureTPMQuote()
	block, _ := pem.Decode(akPEM)
	if block == nil {
		t.Fatal("akpub.pem: no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return attest, rsaSignature(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256, raw), pcrs, k.(*rsa.PublicKey)
}

// rsaSignature encodes a TPMT_SIGNATURE.
func rsaSignature(scheme, hash tpm2.TPMAlgID, sig []byte) []byte {
	return tpm2.Marshal(&tpm2.TPMTSignature{
		SigAlg:    scheme,
		Signature: tpm2.NewTPMUSignature(scheme, &tpm2.TPMSSignatureRSA{Hash: hash, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: sig}}),
	})
}

// quoteSpec describes a synthetic TPM quote.
type quoteSpec struct {
	key       *rsa.PrivateKey
	extraData []byte
	pcrs      [][]byte // SHA-256 values of PCRs 0..len-1
	scheme    tpm2.TPMAlgID
	hash      tpm2.TPMAlgID
}

// makeQuote returns a TPMS_ATTEST over spec.pcrs (SHA-256 bank, PCRs 0 to
// len-1) and its TPMT_SIGNATURE by spec.key, as a vTPM's TPM2_Quote would.
func makeQuote(t testing.TB, spec quoteSpec) (attest, sig []byte) {
	t.Helper()
	if spec.scheme == 0 {
		spec.scheme = tpm2.TPMAlgRSASSA
	}
	if spec.hash == 0 {
		spec.hash = tpm2.TPMAlgSHA256
	}
	h, err := spec.hash.Hash()
	if err != nil {
		t.Fatal(err)
	}
	d := h.New()
	sel := make([]byte, 3)
	for i, p := range spec.pcrs {
		sel[i/8] |= 1 << (i % 8)
		d.Write(p)
	}
	name := append([]byte{0x00, 0x0b}, make([]byte, 32)...) // nameAlg SHA-256 and a digest
	attest = tpm2.Marshal(&tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: name},
		ExtraData:       tpm2.TPM2BData{Buffer: spec.extraData},
		ClockInfo:       tpm2.TPMSClockInfo{Clock: 12345, ResetCount: 1, RestartCount: 2, Safe: true},
		FirmwareVersion: 0x2020031200120003,
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: sel}}},
			PCRDigest: tpm2.TPM2BDigest{Buffer: d.Sum(nil)},
		}),
	})
	m := h.New()
	m.Write(attest)
	var raw []byte
	if spec.scheme == tpm2.TPMAlgRSAPSS {
		raw, err = rsa.SignPSS(rand.Reader, spec.key, h, m.Sum(nil), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		raw, err = rsa.SignPKCS1v15(rand.Reader, spec.key, h, m.Sum(nil))
	}
	if err != nil {
		t.Fatal(err)
	}
	return attest, rsaSignature(spec.scheme, spec.hash, raw)
}

// testPCRs returns 24 distinct SHA-256 PCR values.
func testPCRs() [][]byte {
	var out [][]byte
	for i := range 24 {
		v := sha256.Sum256([]byte{byte(i)})
		out = append(out, v[:])
	}
	return out
}

// runtimeJSON returns runtime data naming key as the AK, in the shape
// Azure writes.
func runtimeJSON(key *rsa.PublicKey) []byte {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	e := big64(key.E)
	return []byte(fmt.Sprintf(`{"keys":[{"kid":"HCLAkPub","key_ops":["sign"],"kty":"RSA","e":%q,"n":%q}],`+
		`"vm-configuration":{"console-enabled":true,"current-time":1678652405,"secure-boot":true,"tpm-enabled":true,"vmUniqueId":"BAEFD3E1-184B-4C4C-AB88-0BDAD260505F"},`+
		`"user-data":"00"}`, b64(e), b64(key.N.Bytes())))
}

func big64(e int) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(e))
	return bytes.TrimLeft(b, "\x00")
}

// makeHCL assembles an HCL report around a hardware report (1184 bytes for
// SNP, 1024 for TDX) and runtime data, with the real SNP report's header
// fields, padded with zeros to pad bytes (0: no padding).
func makeHCL(hw []byte, reportType, hashType uint32, runtime []byte, pad int) []byte {
	var b []byte
	le := binary.LittleEndian
	dataSize := uint32(reqDataSize + len(runtime))
	b = le.AppendUint32(b, hclSignature)
	b = le.AppendUint32(b, 1)
	b = le.AppendUint32(b, uint32(reqDataOffset)+dataSize)
	b = le.AppendUint32(b, 2)
	b = append(b, make([]byte, 16)...)
	area := make([]byte, hwAreaSize)
	copy(area, hw)
	b = append(b, area...)
	for _, v := range []uint32{dataSize, reqDataVersion, reportType, hashType, uint32(len(runtime))} {
		b = le.AppendUint32(b, v)
	}
	b = append(b, runtime...)
	if pad > len(b) {
		b = append(b, make([]byte, pad-len(b))...)
	}
	return b
}

// genoaReport returns a real SNP report (Genoa, VMPL 0, from
// internal/captures) and its certificate table. No captured Azure SNP
// report comes with its own VCEK (azure/certs.pem is another chip's), so
// synthetic az-snp-vtpm evidence carries this one.
func genoaReport(t testing.TB) (report, certs []byte) {
	t.Helper()
	b, err := snp.ParseTSMReport(captures.SNPGenoaTSM())
	if err != nil {
		t.Fatal(err)
	}
	return b.Evidence, b.Certs
}

// genoaTime is inside the validity of the Genoa report's VCEK.
var genoaTime = time.Date(2025, time.June, 1, 0, 0, 0, 0, time.UTC)

// fakeHW stands in for a hardware verifier. With inner set, it has inner
// verify the evidence it is given (or fixed, when set) and then reports
// reportData as the hardware report_data: real hardware evidence paired
// with runtime data of a test's own, whose hash no real report holds.
// Without inner it returns claims and reportData as they are.
type fakeHW struct {
	inner      attestation.Verifier
	fixed      *attestation.Bundle
	tee        attestation.TEE
	claims     map[string]any
	reportData []byte
	err        error
}

func (f *fakeHW) Verify(ctx context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	if f.err != nil {
		res := &attestation.Result{TEE: f.tee}
		return res, res.Fail("fake", f.err)
	}
	res := &attestation.Result{TEE: f.tee, Claims: f.claims}
	if f.inner != nil {
		in := b
		if f.fixed != nil {
			in = f.fixed
		}
		var err error
		if res, err = f.inner.Verify(ctx, in); err != nil {
			return res, err
		}
	}
	res.ReportData = bytes.Clone(f.reportData)
	return res, nil
}

// snpFake returns a fakeHW that verifies SNP reports with the real SNP
// verifier at genoaTime and reports the SHA-256 of runtime as their
// report_data.
func snpFake(t testing.TB, runtime []byte) *fakeHW {
	t.Helper()
	v, err := snp.NewVerifier(snp.Config{Now: func() time.Time { return genoaTime }})
	if err != nil {
		t.Fatal(err)
	}
	rd := make([]byte, 64)
	d := sha256.Sum256(runtime)
	copy(rd, d[:])
	return &fakeHW{inner: v, tee: attestation.SNP, reportData: rd}
}

// tdReportFrom builds a TD report from the fields of a TDX claims map (as
// attestation/tdx produces them) and report_data, with consistent hashes.
func tdReportFrom(t testing.TB, tdx map[string]any, reportData []byte) []byte {
	t.Helper()
	r := make([]byte, tdReportSize)
	r[0] = tdxReportType
	put := func(off int, claim string) {
		s, _ := tdx[claim].(string)
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("claim %s: %v", claim, err)
		}
		copy(r[off:], b)
	}
	copy(r[tdrReportData:], reportData)
	put(tdrTCBInfo+8, "tee_tcb_svn")
	put(tdrTCBInfo+24, "mr_seam")
	put(tdrTCBInfo+72, "mr_signer_seam")
	put(tdrTCBInfo+120, "seam_attributes")
	put(tdrTCBInfo+128, "tee_tcb_svn2")
	put(tdrTDInfo, "td_attributes")
	put(tdrTDInfo+8, "xfam")
	put(tdrTDInfo+16, "mr_td")
	put(tdrTDInfo+64, "mr_config_id")
	put(tdrTDInfo+112, "mr_owner")
	put(tdrTDInfo+160, "mr_owner_config")
	for i := range 4 {
		put(tdrTDInfo+208+48*i, fmt.Sprintf("rtmr%d", i))
	}
	put(tdrTDInfo+400, "mr_service_td")
	fixTDHashes(r)
	return r
}

// fixTDHashes recomputes a TD report's TEE_TCB_INFO and TDINFO hashes.
func fixTDHashes(r []byte) {
	h1 := sha512.Sum384(r[tdrTCBInfo : tdrTCBInfo+tdrTCBInfoSize])
	copy(r[tdrTCBInfoHash:], h1[:])
	h2 := sha512.Sum384(r[tdrTDInfo : tdrTDInfo+tdrTDInfoSize])
	copy(r[tdrTDInfoHash:], h2[:])
}

// tdxClaimsOf returns TDX claims as attestation/tdx would produce them for a
// quote over the TD report r (version 5, TDX 1.5 body).
func tdxClaimsOf(t testing.TB, r []byte) map[string]any {
	t.Helper()
	td, err := parseTDReport(r)
	if err != nil {
		t.Fatal(err)
	}
	x := hex.EncodeToString
	tdx := map[string]any{
		"quote_version": 5, "mr_td": x(td.mrTD), "mr_config_id": x(td.mrConfigID), "mr_owner": x(td.mrOwner),
		"mr_owner_config": x(td.mrOwnerConfig), "rtmr0": x(td.rtmrs[0]), "rtmr1": x(td.rtmrs[1]),
		"rtmr2": x(td.rtmrs[2]), "rtmr3": x(td.rtmrs[3]), "mr_seam": x(td.mrSeam), "mr_signer_seam": x(td.mrSignerSeam),
		"seam_attributes": x(td.seamAttributes), "td_attributes": x(td.tdAttributes), "xfam": x(td.xfam),
		"tee_tcb_svn": x(td.teeTCBSVN), "tcb_status": "UpToDate", "qe_tcb_status": "UpToDate", "advisory_ids": []string{},
		"tcb_date": "2025-01-01T00:00:00Z", "fmspc": "90c06f000000", "mr_service_td": x(td.servTDHash), "tee_tcb_svn2": x(td.teeTCBSVN2),
	}
	return map[string]any{
		"tee": "tdx", "measurement": x(td.mrTD), "debug": td.tdAttributes[0]&1 != 0, "report_data": x(td.reportData),
		"insecure": false, "tcb_status": "UpToDate", "tdx": tdx,
	}
}

// mustJSON encodes v.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// isAny reports whether err wraps one of targets.
func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
