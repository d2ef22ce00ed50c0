package azure

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"github.com/kura-cc/kura/attestation"
)

// Names of the checks a Verifier records, in order. The hardware
// verifier's own checks come between "hcl report parse" and "runtime data",
// prefixed with "snp " or "tdx ".
const (
	checkParse       = "hcl report parse"
	checkVMPL        = "snp vmpl"
	checkTDQuote     = "td quote"
	checkTDReport    = "td report vs quote"
	checkRuntimeData = "runtime data"
	checkAK          = "attestation key"
	checkQuoteParse  = "tpm quote parse"
	checkQuoteSig    = "tpm quote signature"
	checkPCRs        = "pcr digest"
)

// Config configures a Verifier. The hardware verifiers are those the
// verifier service already runs for plain SNP and TDX evidence, so they
// share its collateral getter, clock and caches.
type Config struct {
	// SNP verifies the SEV-SNP report inside az-snp-vtpm evidence, with
	// the bundle's Certs: an *snp.Verifier. Nil refuses az-snp-vtpm.
	SNP attestation.Verifier
	// TDX verifies the TD quote of az-tdx-vtpm evidence, with the bundle's
	// Collateral: a *tdx.Verifier. Nil refuses az-tdx-vtpm.
	TDX attestation.Verifier
	// Logger receives one record per verification with its outcome. Nil
	// discards.
	Logger *slog.Logger
}

// Verifier verifies Azure confidential VM vTPM evidence (az-snp-vtpm,
// az-tdx-vtpm). It implements attestation.Verifier and is safe for
// concurrent use when its hardware verifiers are.
type Verifier struct {
	snp, tdx attestation.Verifier
	log      *slog.Logger
}

var _ attestation.Verifier = (*Verifier)(nil)

// NewVerifier returns a Verifier for cfg, which must name at least one
// hardware verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.SNP == nil && cfg.TDX == nil {
		return nil, errors.New("azure: no SNP or TDX verifier configured")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{snp: cfg.SNP, tdx: cfg.TDX, log: log}, nil
}

// Verify checks b (see the package documentation for the steps) and
// returns the claims of docs/spec/attestation.md §5: the hardware
// verifier's (SNP's or TDX's) with tee set to b.TEE and report_data set to
// the TPM quote's extraData, plus "azure" (the HCL report's runtime data)
// and "vtpm" (the attestation key and the quoted PCRs). Result.ReportData
// is the quote's extraData, zero-padded to 64 bytes: it, not the hardware
// report_data (which binds the runtime data), carries the nonce binding
// the verifier service checks.
func (v *Verifier) Verify(ctx context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	res := &attestation.Result{}
	if b != nil {
		res.TEE = b.TEE
	}
	claims, err := v.verify(ctx, b, res)
	if err != nil {
		v.log.LogAttrs(ctx, slog.LevelWarn, "azure vtpm evidence rejected", slog.String("tee", string(res.TEE)), slog.String("reason", err.Error()))
		return res, err
	}
	res.Claims = claims
	v.log.LogAttrs(ctx, slog.LevelInfo, "azure vtpm evidence verified", slog.String("tee", string(res.TEE)),
		slog.Any("measurement", claims["measurement"]), slog.Any("ak_sha256", claims["vtpm"].(map[string]any)["ak_sha256"]))
	return res, nil
}

func (v *Verifier) verify(ctx context.Context, b *attestation.Bundle, res *attestation.Result) (map[string]any, error) {
	// Parse: no cryptography yet.
	if b == nil || (b.TEE != attestation.AzSNPvTPM && b.TEE != attestation.AzTDXvTPM) {
		return nil, res.Fail(checkParse, fmt.Errorf("%w: bundle is not for tee %s or %s", attestation.ErrMalformed, attestation.AzSNPvTPM, attestation.AzTDXvTPM))
	}
	if b.VTPM == nil {
		return nil, res.Fail(checkParse, fmt.Errorf("%w: bundle has no vtpm member (the TPM quote)", attestation.ErrMalformed))
	}
	hcl, err := parseHCLReport(b.Evidence)
	if err != nil {
		return nil, res.Fail(checkParse, err)
	}
	if hcl.tee != b.TEE {
		return nil, res.Fail(checkParse, fmt.Errorf("%w: the HCL report carries %s, so it is %s evidence, not %s", attestation.ErrMalformed, hcl.aHardware(), hcl.tee, b.TEE))
	}
	var td *tdReport
	if hcl.tee == attestation.AzTDXvTPM {
		if td, err = parseTDReport(hcl.hardware); err != nil {
			return nil, res.Fail(checkParse, err)
		}
	}
	res.Pass(checkParse, fmt.Sprintf("HCL report version %d: %s and %d bytes of runtime data (%s)", hcl.version, hcl.aHardware(), len(hcl.runtimeData), hcl.hashName()))

	// The hardware report, up to the vendor root.
	var hw *attestation.Result
	if b.TEE == attestation.AzSNPvTPM {
		hw, err = v.verifySNP(ctx, b, hcl, res)
	} else {
		hw, err = v.verifyTDX(ctx, b, td, res)
	}
	if err != nil {
		return nil, err
	}

	// The hardware report_data binds the runtime data.
	digest := hcl.runtimeDataDigest()
	if len(hw.ReportData) != attestation.ReportDataSize ||
		subtle.ConstantTimeCompare(hw.ReportData[:len(digest)], digest) != 1 || !allZero(hw.ReportData[len(digest):]) {
		return nil, res.Fail(checkRuntimeData, fmt.Errorf("%w: the %s's report_data is %x, want %s of the HCL report's runtime data (%x) then zeros",
			attestation.ErrBinding, hcl.hardwareName(), hw.ReportData, hcl.hashName(), digest))
	}
	res.Pass(checkRuntimeData, fmt.Sprintf("the %s's report_data is the %s of the runtime data", hcl.hardwareName(), hcl.hashName()))

	rd, err := parseRuntimeData(hcl.runtimeData)
	if err != nil {
		return nil, res.Fail(checkAK, err)
	}
	akDER, err := x509.MarshalPKIXPublicKey(rd.ak)
	if err != nil {
		return nil, res.Fail(checkAK, fmt.Errorf("%w: attestation key: %v", attestation.ErrMalformed, err))
	}
	akSum := sha256.Sum256(akDER)
	res.Pass(checkAK, fmt.Sprintf("RSA-%d key %q from the runtime data (SPKI SHA-256 %x)", rd.ak.N.BitLen(), akKeyID, akSum))

	// The TPM quote, signed by that key.
	q, err := parseTPMQuote(b.VTPM.Quote, b.VTPM.Signature)
	if err != nil {
		return nil, res.Fail(checkQuoteParse, err)
	}
	res.Pass(checkQuoteParse, fmt.Sprintf("TPMS_ATTEST quote, %d bytes of extraData, %s signature", len(q.extraData), q.schemeName()))
	if err := q.verifySignature(rd.ak); err != nil {
		return nil, res.Fail(checkQuoteSig, err)
	}
	res.Pass(checkQuoteSig, fmt.Sprintf("%s signature by the attestation key", q.schemeName()))
	pcrs, err := q.checkPCRs(b.VTPM.PCRs)
	if err != nil {
		return nil, res.Fail(checkPCRs, err)
	}
	res.Pass(checkPCRs, fmt.Sprintf("%d PCR values hash to the quote's pcrDigest (%s)", len(b.VTPM.PCRs), q.hash))

	res.ReportData = make([]byte, attestation.ReportDataSize)
	copy(res.ReportData, q.extraData)
	return claims(b.TEE, hw, hcl, rd, q, pcrs, akDER, akSum[:], res.ReportData), nil
}

// verifySNP checks the SNP report with the SNP verifier, and that the HCL
// (the paravisor, at VMPL 0) asked for it. It returns the SNP verifier's
// result.
func (v *Verifier) verifySNP(ctx context.Context, b *attestation.Bundle, hcl *hclReport, res *attestation.Result) (*attestation.Result, error) {
	if v.snp == nil {
		return nil, res.Fail("snp report", fmt.Errorf("%w: this verifier does not accept %s evidence", attestation.ErrMalformed, b.TEE))
	}
	hw, err := v.snp.Verify(ctx, &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.SNP, Evidence: hcl.hardware, Certs: b.Certs})
	appendChecks(res, "snp ", hw)
	if err != nil {
		return nil, err
	}
	// A guest OS runs above VMPL 0 and can ask the PSP for reports of its
	// own, with any report_data: only VMPL 0 reports come from the HCL.
	if vmpl := binary.LittleEndian.Uint32(hcl.hardware[snpVMPLAt:]); vmpl != 0 {
		return nil, res.Fail(checkVMPL, fmt.Errorf("%w: the SNP report was requested at VMPL %d, not by the HCL at VMPL 0: code outside the paravisor may have chosen its report_data",
			attestation.ErrUntrustedRoot, vmpl))
	}
	res.Pass(checkVMPL, "VMPL 0: the report was requested by the HCL (paravisor), not the guest OS")
	return hw, nil
}

// verifyTDX checks the TD quote with the TDX verifier and that it quotes the
// HCL report's TD report. It returns the TDX verifier's result.
func (v *Verifier) verifyTDX(ctx context.Context, b *attestation.Bundle, td *tdReport, res *attestation.Result) (*attestation.Result, error) {
	if v.tdx == nil {
		return nil, res.Fail(checkTDQuote, fmt.Errorf("%w: this verifier does not accept %s evidence", attestation.ErrMalformed, b.TEE))
	}
	if len(b.VTPM.TDQuote) == 0 {
		return nil, res.Fail(checkTDQuote, fmt.Errorf("%w: no TD quote: the HCL report's TD report is authenticated only by a MAC that the TDX platform itself can check, "+
			"so without a TD quote from Intel's quoting enclave nothing ties it to genuine TDX hardware (vtpm.td_quote, --td-quote)", attestation.ErrUntrustedRoot))
	}
	hw, err := v.tdx.Verify(ctx, &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.TDX, Evidence: b.VTPM.TDQuote, Collateral: b.Collateral})
	appendChecks(res, "tdx ", hw)
	if err != nil {
		return nil, err
	}
	if err := td.matchQuote(hw.ReportData, hw.Claims); err != nil {
		return nil, res.Fail(checkTDReport, err)
	}
	res.Pass(checkTDReport, "the TD quote quotes the HCL report's TD report: report_data, MRTD, RTMRs, attributes, XFAM, config and owner ids, SEAM fields agree")
	return hw, nil
}

// appendChecks copies the hardware verifier's checks onto res, prefixed.
func appendChecks(res *attestation.Result, prefix string, hw *attestation.Result) {
	if hw == nil {
		return
	}
	for _, c := range hw.Checks {
		c.Name = prefix + c.Name
		res.Checks = append(res.Checks, c)
	}
}

// claims assembles the claims documented on Verify.
func claims(tee attestation.TEE, hw *attestation.Result, hcl *hclReport, rd *runtimeData, q *tpmQuote, pcrs map[string]any, akDER, akSum, reportData []byte) map[string]any {
	c := maps.Clone(hw.Claims)
	c["tee"] = string(tee)
	c["report_data"] = hex.EncodeToString(reportData)
	azure := map[string]any{
		"hcl_version":          int(hcl.version),
		"report_type":          string(hw.TEE),
		"runtime_data_hash":    hcl.hashName(),
		"hardware_report_data": hex.EncodeToString(hw.ReportData),
		"user_data":            rd.userData,
	}
	if rd.vmConfig != nil {
		azure["vm_configuration"] = rd.vmConfig
	} else {
		azure["vm_configuration"] = map[string]any{}
	}
	c["azure"] = azure
	c["vtpm"] = map[string]any{
		"ak_pub":           hex.EncodeToString(akDER),
		"ak_sha256":        hex.EncodeToString(akSum),
		"qualified_signer": hex.EncodeToString(q.signer),
		"extra_data":       hex.EncodeToString(q.extraData),
		"firmware_version": hex.EncodeToString(binary.BigEndian.AppendUint64(nil, q.firmware)),
		"signature":        q.schemeName(),
		"pcrs":             pcrs,
	}
	return c
}
