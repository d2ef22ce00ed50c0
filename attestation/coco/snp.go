package coco

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/google/go-sev-guest/abi"

	"github.com/kura-cc/kura/attestation"
)

// Limits on SNP certificate chains: kura's SNP verifier reads at most eight
// certificate table entries, and AMD certificates and CRLs are a few KiB.
const (
	maxCertEntries   = 8
	maxCertEntrySize = 64 << 10
)

// crlGUID is the GHCB certificate table GUID of AMD's CRL (the sev crate's
// CertType::CRL).
const crlGUID = "92f81bc3-5811-4d3d-97ff-d19f88dc67ea"

// snpReport lists, in ABI order, the members of the sev crate's serde form
// of AttestationReport (sev 5 to 7) with where each goes in the 1184-byte
// report (AMD SEV-SNP ABI, table "ATTESTATION_REPORT").
var snpReport = []struct {
	name   string
	offset int
	kind   int // kindU8..kindU64, kindBytes, kindTCB, kindVersion, kindSignature
	size   int // bytes for kindBytes
	opt    bool
}{
	{"version", 0x00, kindU32, 0, false},
	{"guest_svn", 0x04, kindU32, 0, false},
	{"policy", 0x08, kindU64, 0, false},
	{"family_id", 0x10, kindBytes, 16, false},
	{"image_id", 0x20, kindBytes, 16, false},
	{"vmpl", 0x30, kindU32, 0, false},
	{"sig_algo", 0x34, kindU32, 0, false},
	{"current_tcb", 0x38, kindTCB, 0, false},
	{"plat_info", 0x40, kindU64, 0, false},
	{"key_info", 0x48, kindU32, 0, false},
	// 0x4C: reserved
	{"report_data", 0x50, kindBytes, 64, false},
	{"measurement", 0x90, kindBytes, 48, false},
	{"host_data", 0xC0, kindBytes, 32, false},
	{"id_key_digest", 0xE0, kindBytes, 48, false},
	{"author_key_digest", 0x110, kindBytes, 48, false},
	{"report_id", 0x140, kindBytes, 32, false},
	{"report_id_ma", 0x160, kindBytes, 32, false},
	{"reported_tcb", 0x180, kindTCB, 0, false},
	{"cpuid_fam_id", 0x188, kindU8, 0, true}, // report version 3 and later
	{"cpuid_mod_id", 0x189, kindU8, 0, true},
	{"cpuid_step", 0x18A, kindU8, 0, true},
	// 0x18B-0x19F: reserved
	{"chip_id", 0x1A0, kindBytes, 64, false},
	{"committed_tcb", 0x1E0, kindTCB, 0, false},
	{"current", 0x1E8, kindVersion, 0, false}, // build, minor, major; 0x1EB reserved
	{"committed", 0x1EC, kindVersion, 0, false},
	{"launch_tcb", 0x1F0, kindTCB, 0, false},
	{"launch_mit_vector", 0x1F8, kindU64, 0, true}, // report version 5, sev 7 and later
	{"current_mit_vector", 0x200, kindU64, 0, true},
	// 0x208-0x29F: reserved
	{"signature", 0x2A0, kindSignature, 0, false}, // R, S (72 bytes each); then reserved
}

const (
	kindU8 = iota
	kindU32
	kindU64
	kindBytes
	kindTCB
	kindVersion
	kindSignature
)

// legacySNPFields are members only the sev crate's older (before 5)
// serialisation of AttestationReport has.
var legacySNPFields = []string{"_author_key_en", "_reserved_0", "_reserved_1", "_reserved_4"}

// parseSNP reads guest-components' SnpEvidence:
// {"attestation_report": <sev AttestationReport>, "cert_chain": null | [<sev CertTableEntry>]}.
func parseSNP(m map[string]json.RawMessage) (*attestation.Bundle, error) {
	if err := fields(m, "snp evidence", []string{"attestation_report"}, []string{"cert_chain"}); err != nil {
		return nil, err
	}
	report, err := snpReportBytes(m["attestation_report"])
	if err != nil {
		return nil, err
	}
	certs, err := snpCertTable(m["cert_chain"])
	if err != nil {
		return nil, err
	}
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.SNP, Evidence: report, Certs: certs}, nil
}

// snpReportBytes rebuilds the binary attestation report from its serde
// form. Reserved bytes are zero, as the ABI requires of a valid report.
func snpReportBytes(raw json.RawMessage) ([]byte, error) {
	m, err := object(raw, "attestation_report")
	if err != nil {
		return nil, err
	}
	for _, k := range legacySNPFields {
		if _, ok := m[k]; ok {
			return nil, fmt.Errorf("%w: %w: attestation_report has %q: it is the sev crate's serialisation before version 5, which kura does not read (guest-components uses sev 6)",
				attestation.ErrMalformed, ErrUnsupported, k)
		}
	}
	var required, optional []string
	for _, f := range snpReport {
		if f.opt {
			optional = append(optional, f.name)
		} else {
			required = append(required, f.name)
		}
	}
	if err := fields(m, "attestation_report", required, optional); err != nil {
		return nil, err
	}
	// The four TCB versions are all in Turin layout (with an FMC SVN) or
	// all in the earlier layout: the sev crate decides per report.
	tcbs := map[string]tcbVersion{}
	turin := 0
	for _, f := range snpReport {
		if f.kind != kindTCB {
			continue
		}
		t, err := parseTCB(m[f.name], "attestation_report."+f.name)
		if err != nil {
			return nil, err
		}
		tcbs[f.name] = t
		if t.fmc != nil {
			turin++
		}
	}
	if turin != 0 && turin != len(tcbs) {
		return nil, fmt.Errorf("%w: attestation_report: %d of %d TCB versions have an fmc field: mixed layouts", attestation.ErrMalformed, turin, len(tcbs))
	}
	out := make([]byte, abi.ReportSize)
	for _, f := range snpReport {
		raw := m[f.name]
		what := "attestation_report." + f.name
		if f.opt && isNull(raw) {
			continue // None: the bytes stay zero
		}
		switch f.kind {
		case kindU8:
			v, err := uintValue(raw, what, 8)
			if err != nil {
				return nil, err
			}
			out[f.offset] = byte(v)
		case kindU32:
			v, err := uintValue(raw, what, 32)
			if err != nil {
				return nil, err
			}
			binary.LittleEndian.PutUint32(out[f.offset:], uint32(v))
		case kindU64:
			v, err := uintValue(raw, what, 64)
			if err != nil {
				return nil, err
			}
			binary.LittleEndian.PutUint64(out[f.offset:], v)
		case kindBytes:
			b, err := byteArray(raw, what, f.size, f.size)
			if err != nil {
				return nil, err
			}
			copy(out[f.offset:], b)
		case kindTCB:
			tcbs[f.name].put(out[f.offset:f.offset+8], turin != 0)
		case kindVersion:
			if err := putVersion(raw, what, out[f.offset:f.offset+3]); err != nil {
				return nil, err
			}
		case kindSignature:
			if err := putSignature(raw, what, out[f.offset:]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// tcbVersion is the sev crate's TcbVersion.
type tcbVersion struct {
	fmc                             *byte
	bootloader, tee, snp, microcode byte
}

func parseTCB(raw json.RawMessage, what string) (tcbVersion, error) {
	var t tcbVersion
	m, err := object(raw, what)
	if err != nil {
		return t, err
	}
	if err := fields(m, what, []string{"bootloader", "tee", "snp", "microcode"}, []string{"fmc"}); err != nil {
		return t, err
	}
	for _, f := range []struct {
		name string
		dst  *byte
	}{{"bootloader", &t.bootloader}, {"tee", &t.tee}, {"snp", &t.snp}, {"microcode", &t.microcode}} {
		v, err := uintValue(m[f.name], what+"."+f.name, 8)
		if err != nil {
			return t, err
		}
		*f.dst = byte(v)
	}
	if !isNull(m["fmc"]) {
		v, err := uintValue(m["fmc"], what+".fmc", 8)
		if err != nil {
			return t, err
		}
		b := byte(v)
		t.fmc = &b
	}
	return t, nil
}

// put writes the TCB_VERSION: Milan and Genoa put BOOT_LOADER, TEE, 4
// reserved bytes, SNP, MICROCODE; Turin puts FMC, BOOT_LOADER, TEE, SNP, 3
// reserved bytes, MICROCODE.
func (t tcbVersion) put(dst []byte, turin bool) {
	if turin {
		dst[0], dst[1], dst[2], dst[3], dst[7] = *t.fmc, t.bootloader, t.tee, t.snp, t.microcode
		return
	}
	dst[0], dst[1], dst[6], dst[7] = t.bootloader, t.tee, t.snp, t.microcode
}

// putVersion writes a firmware version {"major","minor","build"} as the
// ABI does: build, minor, major.
func putVersion(raw json.RawMessage, what string, dst []byte) error {
	m, err := object(raw, what)
	if err != nil {
		return err
	}
	if err := fields(m, what, []string{"major", "minor", "build"}, nil); err != nil {
		return err
	}
	for i, k := range []string{"build", "minor", "major"} {
		v, err := uintValue(m[k], what+"."+k, 8)
		if err != nil {
			return err
		}
		dst[i] = byte(v)
	}
	return nil
}

// putSignature writes {"r": [72], "s": [72]}: R and S, zero-extended
// little endian, as the ABI lays them out.
func putSignature(raw json.RawMessage, what string, dst []byte) error {
	m, err := object(raw, what)
	if err != nil {
		return err
	}
	if err := fields(m, what, []string{"r", "s"}, nil); err != nil {
		return err
	}
	for i, k := range []string{"r", "s"} {
		b, err := byteArray(m[k], what+"."+k, 72, 72)
		if err != nil {
			return err
		}
		copy(dst[i*72:], b)
	}
	return nil
}

// snpCertTable turns the sev crate's Vec<CertTableEntry> into the GUID
// certificate table of an extended report, the form kura bundles carry.
// Empty entries are dropped; a null or empty chain gives no table, and the
// verifier fetches the VCEK itself.
func snpCertTable(raw json.RawMessage) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%w: cert_chain is not an array", attestation.ErrMalformed)
	}
	type entry struct {
		guid [16]byte
		data []byte
	}
	var entries []entry
	for i, e := range list {
		what := fmt.Sprintf("cert_chain[%d]", i)
		m, err := object(e, what)
		if err != nil {
			return nil, err
		}
		if err := fields(m, what, []string{"cert_type", "data"}, nil); err != nil {
			return nil, err
		}
		guid, empty, err := certGUID(m["cert_type"], what+".cert_type")
		if err != nil {
			return nil, err
		}
		data, err := byteArray(m["data"], what+".data", -1, maxCertEntrySize)
		if err != nil {
			return nil, err
		}
		if empty {
			continue
		}
		if len(entries) == maxCertEntries {
			return nil, fmt.Errorf("%w: cert_chain has more than %d entries", attestation.ErrMalformed, maxCertEntries)
		}
		entries = append(entries, entry{guid, data})
	}
	if len(entries) == 0 {
		return nil, nil
	}
	// Header: one 24-byte entry (GUID, offset, length; little endian) per
	// certificate and an all-zero terminator, then the certificates.
	header := (len(entries) + 1) * abi.CertTableEntrySize
	size := header
	for _, e := range entries {
		size += len(e.data)
	}
	out := make([]byte, size)
	off := header
	for i, e := range entries {
		h := out[i*abi.CertTableEntrySize:]
		copy(h, e.guid[:])
		binary.LittleEndian.PutUint32(h[16:], uint32(off))
		binary.LittleEndian.PutUint32(h[20:], uint32(len(e.data)))
		off += copy(out[off:], e.data)
	}
	return out, nil
}

// certGUID maps the sev crate's CertType — "ARK", "ASK", "VCEK", "VLEK",
// "CRL", "Empty" or {"OTHER": "<uuid>"} — to its table GUID.
func certGUID(raw json.RawMessage, what string) (guid [16]byte, empty bool, err error) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		var s string
		switch name {
		case "Empty":
			return guid, true, nil
		case "ARK":
			s = abi.ArkGUID
		case "ASK":
			s = abi.AskGUID
		case "VCEK":
			s = abi.VcekGUID
		case "VLEK":
			s = abi.VlekGUID
		case "CRL":
			s = crlGUID
		default:
			return guid, false, fmt.Errorf("%w: %s %q is not ARK, ASK, VCEK, VLEK, CRL, Empty or {\"OTHER\": uuid}", attestation.ErrMalformed, what, name)
		}
		guid, err = parseUUID(s)
		return guid, false, err
	}
	m, err := object(raw, what)
	if err != nil {
		return guid, false, err
	}
	if err := fields(m, what, []string{"OTHER"}, nil); err != nil {
		return guid, false, err
	}
	var s string
	if err := json.Unmarshal(m["OTHER"], &s); err != nil {
		return guid, false, fmt.Errorf("%w: %s.OTHER is not a string", attestation.ErrMalformed, what)
	}
	guid, err = parseUUID(s)
	if err != nil {
		return guid, false, fmt.Errorf("%s.OTHER: %w", what, err)
	}
	return guid, guid == [16]byte{}, nil
}

// parseUUID reads a hyphenated UUID (8-4-4-4-12 hex digits) into its 16
// bytes in text order, as the certificate table stores GUIDs.
func parseUUID(s string) ([16]byte, error) {
	var out [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return out, fmt.Errorf("%w: %q is not a UUID", attestation.ErrMalformed, s)
	}
	j := 0
	for i := 0; i < len(s); {
		if s[i] == '-' {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return out, fmt.Errorf("%w: %q is not a UUID", attestation.ErrMalformed, s)
		}
		out[j] = hi<<4 | lo
		j++
		i += 2
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
