package azure

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"

	"github.com/kura-cc/kura/attestation"
)

// The HCL report, as Azure's paravisor (the HCL) writes it to the vTPM's NV
// index 0x01400001; all integers little-endian (docs/spec/attestation.md
// §4.5):
//
//	0x000  header, 32 bytes: signature "HCLA", version, report_size,
//	       request_type, status, 3 reserved u32
//	0x020  hardware report area, 1184 bytes: the SEV-SNP ATTESTATION_REPORT,
//	       or the 1024-byte TDREPORT_STRUCT and 160 zero bytes
//	0x4C0  request data, 20 bytes: data_size, version, report_type (2 SNP,
//	       4 TDX), report_data_hash_type (1 SHA-256, 2 SHA-384, 3 SHA-512),
//	       variable_data_size
//	0x4D4  variable data (the runtime data JSON), variable_data_size bytes
//
// report_size counts the header, the hardware area and data_size bytes of
// request data and variable data; the NV index pads the rest with zeros.
const (
	hclHeaderSize   = 0x20
	hwAreaOffset    = hclHeaderSize
	hwAreaSize      = 1184 // the SNP report size, the larger of the two
	reqDataOffset   = hwAreaOffset + hwAreaSize
	reqDataSize     = 20
	varDataOffset   = reqDataOffset + reqDataSize
	snpReportSize   = 1184
	tdReportSize    = 1024
	hclSignature    = 0x414c4348 // "HCLA"
	reqDataVersion  = 1
	reportTypeSNP   = 2
	reportTypeTDX   = 4
	hashTypeSHA256  = 1
	hashTypeSHA384  = 2
	hashTypeSHA512  = 3
	minRuntimeData  = 2 // "{}"
	snpReportDataAt = 0x50
	snpVMPLAt       = 0x30
)

// MaxHCLReportSize bounds an HCL report. Azure's NV index holds 2 to 3
// KiB; the runtime data, the only part that varies, is about 1 KiB.
const MaxHCLReportSize = 16 << 10

// hclReport is a parsed HCL report. Nothing in it is verified.
type hclReport struct {
	version     uint32
	requestType uint32
	tee         attestation.TEE // AzSNPvTPM or AzTDXvTPM, from report_type
	hashType    uint32
	hardware    []byte // the SNP report (1184 bytes) or the TD report (1024 bytes)
	runtimeData []byte // the variable data, JSON
}

// parseHCLReport parses an HCL report strictly: every size is checked
// against the others and against the input, unknown versions, report
// types and hash types are refused, and the bytes the report leaves unused
// must be zero.
func parseHCLReport(data []byte) (*hclReport, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: hcl report: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
	}
	switch {
	case len(data) > MaxHCLReportSize:
		return nil, bad("%d bytes, limit is %d", len(data), MaxHCLReportSize)
	case len(data) < varDataOffset:
		return nil, bad("%d bytes, shorter than its %d-byte fixed part", len(data), varDataOffset)
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(data[off:]) }
	if u32(0) != hclSignature {
		return nil, bad("signature %#08x, want %#08x (\"HCLA\")", u32(0), uint32(hclSignature))
	}
	h := &hclReport{version: u32(4), requestType: u32(12)}
	if h.version != 1 && h.version != 2 {
		return nil, bad("header version %d, want 1 or 2", h.version)
	}
	reportSize, dataSize := u32(8), u32(reqDataOffset)
	if v := u32(reqDataOffset + 4); v != reqDataVersion {
		return nil, bad("request data version %d, want %d", v, reqDataVersion)
	}
	varSize := u32(reqDataOffset + 16)
	// All sizes are bounded by len(data) <= MaxHCLReportSize before any
	// addition, so nothing below overflows.
	switch {
	case varSize < minRuntimeData || uint64(varSize) > uint64(len(data)-varDataOffset):
		return nil, bad("variable_data_size %d does not fit the %d bytes after the fixed part", varSize, len(data)-varDataOffset)
	case dataSize != reqDataSize+varSize:
		return nil, bad("data_size %d, want %d (request data and variable data)", dataSize, reqDataSize+varSize)
	case reportSize != reqDataOffset+dataSize:
		return nil, bad("report_size %d, want %d (header, hardware report, data_size)", reportSize, reqDataOffset+dataSize)
	}
	end := int(reportSize)
	if !allZero(data[end:]) {
		return nil, bad("non-zero bytes after report_size (%d)", end)
	}
	switch t := u32(reqDataOffset + 8); t {
	case reportTypeSNP:
		h.tee = attestation.AzSNPvTPM
		h.hardware = data[hwAreaOffset : hwAreaOffset+snpReportSize]
	case reportTypeTDX:
		h.tee = attestation.AzTDXvTPM
		h.hardware = data[hwAreaOffset : hwAreaOffset+tdReportSize]
		if !allZero(data[hwAreaOffset+tdReportSize : reqDataOffset]) {
			return nil, bad("non-zero bytes after the TD report in the hardware report area")
		}
	default:
		return nil, bad("report_type %d, want %d (SEV-SNP) or %d (TDX)", t, reportTypeSNP, reportTypeTDX)
	}
	h.hashType = u32(reqDataOffset + 12)
	if h.hashType < hashTypeSHA256 || h.hashType > hashTypeSHA512 {
		return nil, bad("report_data_hash_type %d, want 1 (SHA-256), 2 (SHA-384) or 3 (SHA-512)", h.hashType)
	}
	h.hardware = bytes.Clone(h.hardware)
	h.runtimeData = bytes.Clone(data[varDataOffset:end])
	return h, nil
}

// runtimeDataDigest returns the hash of the runtime data under the report's
// hash type, which the hardware report_data must begin with.
func (h *hclReport) runtimeDataDigest() []byte {
	switch h.hashType {
	case hashTypeSHA384:
		d := sha512.Sum384(h.runtimeData)
		return d[:]
	case hashTypeSHA512:
		d := sha512.Sum512(h.runtimeData)
		return d[:]
	}
	d := sha256.Sum256(h.runtimeData)
	return d[:]
}

// hashName names the report's hash type.
func (h *hclReport) hashName() string {
	switch h.hashType {
	case hashTypeSHA384:
		return "SHA-384"
	case hashTypeSHA512:
		return "SHA-512"
	}
	return "SHA-256"
}

// aHardware names the hardware report with its article.
func (h *hclReport) aHardware() string {
	if h.tee == attestation.AzTDXvTPM {
		return "a TD report"
	}
	return "an SNP report"
}

// hardwareName names the hardware report the HCL report carries.
func (h *hclReport) hardwareName() string {
	if h.tee == attestation.AzTDXvTPM {
		return "TD report"
	}
	return "SNP report"
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
