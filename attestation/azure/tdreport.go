package azure

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"fmt"

	"github.com/kura-cc/kura/attestation"
)

// tdReport is a parsed TDREPORT_STRUCT (Intel TDX module ABI: REPORTMACSTRUCT
// at 0, TEE_TCB_INFO at 256, TDINFO_STRUCT at 512). Nothing in it is
// authenticated: its MAC is keyed by the platform and only that platform
// (its quoting enclave) can check it.
type tdReport struct {
	reportData     []byte
	teeTCBSVN      []byte
	mrSeam         []byte
	mrSignerSeam   []byte
	seamAttributes []byte
	teeTCBSVN2     []byte
	tdAttributes   []byte
	xfam           []byte
	mrTD           []byte
	mrConfigID     []byte
	mrOwner        []byte
	mrOwnerConfig  []byte
	rtmrs          [4][]byte
	servTDHash     []byte
}

// Offsets in TDREPORT_STRUCT.
const (
	tdrTCBInfoHash = 0x20  // SHA-384 of TEE_TCB_INFO (239 bytes)
	tdrTDInfoHash  = 0x50  // SHA-384 of TDINFO_STRUCT (512 bytes)
	tdrReportData  = 0x80  // 64 bytes
	tdrTCBInfo     = 0x100 // TEE_TCB_INFO
	tdrTCBInfoSize = 239
	tdrTDInfo      = 0x200 // TDINFO_STRUCT
	tdrTDInfoSize  = 512
	tdxReportType  = 0x81
)

// parseTDReport reads a 1024-byte TD report. It checks the report type and
// that the two hashes in REPORTMACSTRUCT are those of TEE_TCB_INFO and
// TDINFO_STRUCT, so the fields read agree with the MACed header; it
// authenticates nothing.
func parseTDReport(b []byte) (*tdReport, error) {
	if len(b) != tdReportSize {
		return nil, fmt.Errorf("%w: td report is %d bytes, want %d", attestation.ErrMalformed, len(b), tdReportSize)
	}
	if b[0] != tdxReportType || b[1] != 0 || b[2] > 1 {
		return nil, fmt.Errorf("%w: td report type %02x, subtype %d, version %d: want a TDX report (81, 0, 0 or 1)", attestation.ErrMalformed, b[0], b[1], b[2])
	}
	tcbInfo := b[tdrTCBInfo : tdrTCBInfo+tdrTCBInfoSize]
	if h := sha512.Sum384(tcbInfo); !bytes.Equal(h[:], b[tdrTCBInfoHash:tdrTCBInfoHash+48]) {
		return nil, fmt.Errorf("%w: td report: TEE_TCB_INFO_HASH is not the SHA-384 of TEE_TCB_INFO", attestation.ErrMalformed)
	}
	tdInfo := b[tdrTDInfo : tdrTDInfo+tdrTDInfoSize]
	if h := sha512.Sum384(tdInfo); !bytes.Equal(h[:], b[tdrTDInfoHash:tdrTDInfoHash+48]) {
		return nil, fmt.Errorf("%w: td report: TEE_INFO_HASH is not the SHA-384 of TDINFO_STRUCT", attestation.ErrMalformed)
	}
	f := func(base, off, n int) []byte { return bytes.Clone(b[base+off : base+off+n]) }
	r := &tdReport{
		reportData: f(tdrReportData, 0, 64),
		// TEE_TCB_INFO: VALID[8], TEE_TCB_SVN[16], MRSEAM[48],
		// MRSIGNERSEAM[48], ATTRIBUTES[8], TEE_TCB_SVN2[16] (TDX 1.5).
		teeTCBSVN:      f(tdrTCBInfo, 8, 16),
		mrSeam:         f(tdrTCBInfo, 24, 48),
		mrSignerSeam:   f(tdrTCBInfo, 72, 48),
		seamAttributes: f(tdrTCBInfo, 120, 8),
		teeTCBSVN2:     f(tdrTCBInfo, 128, 16),
		// TDINFO_STRUCT: ATTRIBUTES[8], XFAM[8], MRTD, MRCONFIGID, MROWNER,
		// MROWNERCONFIG, RTMR0..3 [48 each], SERVTD_HASH[48].
		tdAttributes:  f(tdrTDInfo, 0, 8),
		xfam:          f(tdrTDInfo, 8, 8),
		mrTD:          f(tdrTDInfo, 16, 48),
		mrConfigID:    f(tdrTDInfo, 64, 48),
		mrOwner:       f(tdrTDInfo, 112, 48),
		mrOwnerConfig: f(tdrTDInfo, 160, 48),
		servTDHash:    f(tdrTDInfo, 400, 48),
	}
	for i := range r.rtmrs {
		r.rtmrs[i] = f(tdrTDInfo, 208+48*i, 48)
	}
	return r, nil
}

// matchQuote compares the TD report with the claims the tdx package
// produced from a verified TD quote (attestation/tdx: claims "tdx" map, hex
// strings; the quote's report_data) and names the first field that differs.
// The quoting enclave copies every one of these fields from the TD report it
// quotes; TDX 1.5 fields are compared when the quote carries them.
func (r *tdReport) matchQuote(quoteReportData []byte, claims map[string]any) error {
	if !bytes.Equal(quoteReportData, r.reportData) {
		return fmt.Errorf("%w: the TD quote's report_data is not the HCL report's TD report's", attestation.ErrBinding)
	}
	tdx, _ := claims["tdx"].(map[string]any)
	fields := []struct {
		claim    string
		report   []byte
		optional bool // absent or empty for TDX 1.0 quote bodies
	}{
		{"mr_td", r.mrTD, false}, {"mr_config_id", r.mrConfigID, false}, {"mr_owner", r.mrOwner, false},
		{"mr_owner_config", r.mrOwnerConfig, false}, {"rtmr0", r.rtmrs[0], false}, {"rtmr1", r.rtmrs[1], false},
		{"rtmr2", r.rtmrs[2], false}, {"rtmr3", r.rtmrs[3], false}, {"td_attributes", r.tdAttributes, false},
		{"xfam", r.xfam, false}, {"mr_seam", r.mrSeam, false}, {"mr_signer_seam", r.mrSignerSeam, false},
		{"seam_attributes", r.seamAttributes, false}, {"tee_tcb_svn", r.teeTCBSVN, false},
		{"tee_tcb_svn2", r.teeTCBSVN2, true}, {"mr_service_td", r.servTDHash, true},
	}
	for _, f := range fields {
		got, ok := tdx[f.claim].(string)
		if f.optional && got == "" {
			continue
		}
		if !ok || got != hex.EncodeToString(f.report) {
			return fmt.Errorf("%w: the TD quote's %s is not the HCL report's TD report's", attestation.ErrBinding, f.claim)
		}
	}
	return nil
}
