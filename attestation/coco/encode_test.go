package coco

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/abi"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/internal/captures"
)

// This file writes evidence as CoCo attesters do, independently of the
// parsers: the sev crate's serde form of a binary SNP report, written from
// the ABI table (serde_json: structs as objects in field order, [u8; N] and
// Vec<u8> as arrays of numbers, Option as null, unit enum variants as
// strings), and guest-components' TdxEvidence.

// sevStyle selects the sev crate's serialisation.
type sevStyle struct {
	turin bool // TCB versions in Turin layout, with an fmc field
	mit   bool // sev 7: launch_mit_vector and current_mit_vector fields
}

func jsonBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprint(c)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func jsonTCB(b []byte, turin bool) string {
	if turin {
		return fmt.Sprintf(`{"fmc":%d,"bootloader":%d,"tee":%d,"snp":%d,"microcode":%d}`, b[0], b[1], b[2], b[3], b[7])
	}
	return fmt.Sprintf(`{"fmc":null,"bootloader":%d,"tee":%d,"snp":%d,"microcode":%d}`, b[0], b[1], b[6], b[7])
}

// sevReportJSON is AttestationReport as serde_json writes it.
func sevReportJSON(r []byte, st sevStyle) string {
	u32 := func(o int) uint32 { return binary.LittleEndian.Uint32(r[o:]) }
	u64 := func(o int) uint64 { return binary.LittleEndian.Uint64(r[o:]) }
	version := u32(0)
	var w strings.Builder
	f := func(name, value string) {
		if w.Len() > 0 {
			w.WriteString(",")
		}
		fmt.Fprintf(&w, "%q:%s", name, value)
	}
	f("version", fmt.Sprint(version))
	f("guest_svn", fmt.Sprint(u32(4)))
	f("policy", fmt.Sprint(u64(8)))
	f("family_id", jsonBytes(r[0x10:0x20]))
	f("image_id", jsonBytes(r[0x20:0x30]))
	f("vmpl", fmt.Sprint(u32(0x30)))
	f("sig_algo", fmt.Sprint(u32(0x34)))
	f("current_tcb", jsonTCB(r[0x38:0x40], st.turin))
	f("plat_info", fmt.Sprint(u64(0x40)))
	f("key_info", fmt.Sprint(u32(0x48)))
	f("report_data", jsonBytes(r[0x50:0x90]))
	f("measurement", jsonBytes(r[0x90:0xC0]))
	f("host_data", jsonBytes(r[0xC0:0xE0]))
	f("id_key_digest", jsonBytes(r[0xE0:0x110]))
	f("author_key_digest", jsonBytes(r[0x110:0x140]))
	f("report_id", jsonBytes(r[0x140:0x160]))
	f("report_id_ma", jsonBytes(r[0x160:0x180]))
	f("reported_tcb", jsonTCB(r[0x180:0x188], st.turin))
	for i, name := range []string{"cpuid_fam_id", "cpuid_mod_id", "cpuid_step"} {
		if version >= 3 {
			f(name, fmt.Sprint(r[0x188+i]))
		} else {
			f(name, "null")
		}
	}
	f("chip_id", jsonBytes(r[0x1A0:0x1E0]))
	f("committed_tcb", jsonTCB(r[0x1E0:0x1E8], st.turin))
	f("current", fmt.Sprintf(`{"major":%d,"minor":%d,"build":%d}`, r[0x1EA], r[0x1E9], r[0x1E8]))
	f("committed", fmt.Sprintf(`{"major":%d,"minor":%d,"build":%d}`, r[0x1EE], r[0x1ED], r[0x1EC]))
	f("launch_tcb", jsonTCB(r[0x1F0:0x1F8], st.turin))
	if st.mit {
		for _, m := range []struct {
			name string
			off  int
		}{{"launch_mit_vector", 0x1F8}, {"current_mit_vector", 0x200}} {
			if version >= 5 {
				f(m.name, fmt.Sprint(u64(m.off)))
			} else {
				f(m.name, "null")
			}
		}
	}
	f("signature", fmt.Sprintf(`{"r":%s,"s":%s}`, jsonBytes(r[0x2A0:0x2E8]), jsonBytes(r[0x2E8:0x330])))
	return "{" + w.String() + "}"
}

// sevCert is one sev CertTableEntry.
type sevCert struct {
	certType string // ARK, ASK, VCEK, VLEK, CRL, Empty, or a UUID for OTHER
	data     []byte
}

func (c sevCert) json() string {
	t := fmt.Sprintf("%q", c.certType)
	if strings.Count(c.certType, "-") == 4 {
		t = fmt.Sprintf(`{"OTHER":%q}`, c.certType)
	}
	return fmt.Sprintf(`{"cert_type":%s,"data":%s}`, t, jsonBytes(c.data))
}

// snpEvidenceJSON is guest-components' SnpEvidence as serde_json writes it.
func snpEvidenceJSON(report []byte, certs []sevCert, st sevStyle) []byte {
	chain := "null"
	if certs != nil {
		parts := make([]string, len(certs))
		for i, c := range certs {
			parts[i] = c.json()
		}
		chain = "[" + strings.Join(parts, ",") + "]"
	}
	return []byte(`{"attestation_report":` + sevReportJSON(report, st) + `,"cert_chain":` + chain + `}`)
}

// tdxEvidenceJSON is guest-components' TdxEvidence as serde_json writes it.
func tdxEvidenceJSON(quote []byte) []byte {
	b, _ := json.Marshal(map[string]any{"cc_eventlog": nil, "quote": base64.StdEncoding.EncodeToString(quote), "aa_eventlog": nil})
	return b
}

// milan returns go-sev-guest's Milan report (version 2) and its VCEK, ASK
// and ARK as the sev crate's cert_chain.
func milan(t testing.TB) ([]byte, []sevCert, *attestation.Bundle) {
	report, vcek, askArk := captures.SNPMilan()
	orig, err := snp.NewBundle(report, append(append([]byte{}, vcek...), askArk...))
	if err != nil {
		t.Fatal(err)
	}
	var certs []sevCert
	certs = append(certs, sevCert{"VCEK", vcek})
	rest := askArk
	for _, name := range []string{"ASK", "ARK"} {
		der, r := pemDER(t, rest)
		certs = append(certs, sevCert{name, der})
		rest = r
	}
	return report, certs, orig
}

// genoa returns Veraison's Genoa configfs-tsm report (version 3) and its
// auxblob certificate table as the sev crate's cert_chain (entries as the
// host served them: PEM).
func genoa(t testing.TB) ([]byte, []sevCert, *attestation.Bundle) {
	orig, err := snp.ParseTSMReport(captures.SNPGenoaTSM())
	if err != nil {
		t.Fatal(err)
	}
	var table abi.CertTable
	if err := table.Unmarshal(orig.Certs); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{abi.VcekGUID: "VCEK", abi.AskGUID: "ASK", abi.ArkGUID: "ARK", abi.VlekGUID: "VLEK"}
	var certs []sevCert
	for _, e := range table.Entries {
		name, ok := names[e.GUID.String()]
		if !ok {
			name = e.GUID.String()
		}
		certs = append(certs, sevCert{name, e.RawCert})
	}
	return orig.Evidence, certs, orig
}

func pemDER(t testing.TB, data []byte) (der, rest []byte) {
	t.Helper()
	b, rest := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM block")
	}
	return b.Bytes, rest
}
