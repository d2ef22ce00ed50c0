package coco

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/snp"
)

// Verification times inside each vector's VCEK validity (as in package snp).
var (
	milanTime = time.Date(2023, time.June, 1, 0, 0, 0, 0, time.UTC)
	genoaTime = time.Date(2025, time.June, 1, 0, 0, 0, 0, time.UTC)
)

func verifySNP(t *testing.T, b *attestation.Bundle, now time.Time) (*attestation.Result, error) {
	t.Helper()
	v, err := snp.NewVerifier(snp.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return v.Verify(context.Background(), b)
}

// TestSNPRoundTrip serialises real reports as guest-components does, parses
// them back, and checks that the rebuilt report is the signed one and that
// kura's SNP verifier treats the converted bundle exactly as the original.
func TestSNPRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		load  func(testing.TB) ([]byte, []sevCert, *attestation.Bundle)
		now   time.Time
		style sevStyle
	}{
		{"milan v2, sev 6", milan, milanTime, sevStyle{}},
		{"milan v2, sev 7", milan, milanTime, sevStyle{mit: true}},
		{"genoa v3, sev 6", genoa, genoaTime, sevStyle{}},
		{"genoa v3, sev 7", genoa, genoaTime, sevStyle{mit: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			report, certs, orig := tc.load(t)
			ev := snpEvidenceJSON(report, certs, tc.style)
			b, err := ParseSNP(ev)
			if err != nil {
				t.Fatalf("ParseSNP: %v", err)
			}
			if !bytes.Equal(b.Evidence, report) {
				t.Fatalf("rebuilt report differs from the original at %s", firstDiff(b.Evidence, report))
			}
			if b.TEE != attestation.SNP || b.Version != attestation.BundleVersion || len(b.Certs) == 0 {
				t.Fatalf("bundle = %+v", b)
			}
			want, err := verifySNP(t, orig, tc.now)
			if err != nil {
				t.Fatalf("original bundle: %v", err)
			}
			got, err := verifySNP(t, b, tc.now)
			if err != nil {
				t.Fatalf("converted bundle: %v", err)
			}
			if fmt.Sprint(got.Checks) != fmt.Sprint(want.Checks) {
				t.Errorf("checks differ:\nconverted %v\noriginal  %v", got.Checks, want.Checks)
			}
			if fmt.Sprint(got.Claims) != fmt.Sprint(want.Claims) || !bytes.Equal(got.ReportData, want.ReportData) {
				t.Errorf("claims differ:\nconverted %v\noriginal  %v", got.Claims, want.Claims)
			}
		})
	}
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("offset 0x%x (%02x, want %02x)", i, a[i], b[i])
		}
	}
	return fmt.Sprintf("length %d, want %d", len(a), len(b))
}

// TestSNPTampered: a changed report field parses, and the signature no
// longer verifies.
func TestSNPTampered(t *testing.T) {
	report, certs, _ := milan(t)
	ev := string(snpEvidenceJSON(report, certs, sevStyle{}))
	tampered := strings.Replace(ev, `"guest_svn":`+fmt.Sprint(binary.LittleEndian.Uint32(report[4:])), `"guest_svn":7`, 1)
	if tampered == ev {
		t.Fatal("tampering did not change the evidence")
	}
	b, err := ParseSNP([]byte(tampered))
	if err != nil {
		t.Fatalf("ParseSNP: %v", err)
	}
	if _, err := verifySNP(t, b, milanTime); !errors.Is(err, attestation.ErrBadSignature) {
		t.Errorf("tampered report: %v, want ErrBadSignature", err)
	}
}

// TestSNPTurinLayout: an fmc field puts the TCB versions in Turin's layout.
func TestSNPTurinLayout(t *testing.T) {
	report, _, _ := milan(t)
	r := bytes.Clone(report)
	for _, off := range []int{0x38, 0x180, 0x1E0, 0x1F0} {
		copy(r[off:off+8], []byte{9, 1, 2, 3, 0, 0, 0, 4}) // fmc 9, bl 1, tee 2, snp 3, ucode 4
	}
	b, err := ParseSNP(snpEvidenceJSON(r, nil, sevStyle{turin: true}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Evidence, r) {
		t.Errorf("Turin TCB layout: differs at %s", firstDiff(b.Evidence, r))
	}
	if b.Certs != nil {
		t.Errorf("null cert_chain gave certs %x", b.Certs)
	}
	// sev 7 mitigation vectors land at 0x1F8 and 0x200.
	binary.LittleEndian.PutUint32(r[0:], 5)
	binary.LittleEndian.PutUint64(r[0x1F8:], 0x0102030405060708)
	binary.LittleEndian.PutUint64(r[0x200:], 0xfffffffffffffffe)
	b, err = ParseSNP(snpEvidenceJSON(r, nil, sevStyle{turin: true, mit: true}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Evidence, r) {
		t.Errorf("mitigation vectors: differs at %s", firstDiff(b.Evidence, r))
	}
}

// TestSNPCertTable: the cert_chain becomes a GUID table kura reads, with
// Empty entries dropped and other GUIDs kept.
func TestSNPCertTable(t *testing.T) {
	report, certs, _ := milan(t)
	certs = append([]sevCert{{"Empty", nil}}, certs...)
	certs = append(certs, sevCert{"CRL", []byte{1, 2}}, sevCert{"ecae0c0f-9502-43b1-afa2-0ae2e0d565b6", []byte{3}})
	b, err := ParseSNP(snpEvidenceJSON(report, certs, sevStyle{}))
	if err != nil {
		t.Fatal(err)
	}
	var table abi.CertTable
	if err := table.Unmarshal(b.Certs); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range table.Entries {
		got = append(got, fmt.Sprintf("%s:%d", e.GUID, len(e.RawCert)))
	}
	want := []string{
		abi.VcekGUID + fmt.Sprintf(":%d", len(certs[1].data)),
		abi.AskGUID + fmt.Sprintf(":%d", len(certs[2].data)),
		abi.ArkGUID + fmt.Sprintf(":%d", len(certs[3].data)),
		crlGUID + ":2",
		"ecae0c0f-9502-43b1-afa2-0ae2e0d565b6:1",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("table = %v, want %v", got, want)
	}
	if _, err := verifySNP(t, b, milanTime); err != nil {
		t.Errorf("verify with CRL and extra entries: %v", err)
	}
	// An empty chain gives no table: the verifier fetches the VCEK.
	b, err = ParseSNP(snpEvidenceJSON(report, []sevCert{}, sevStyle{}))
	if err != nil || b.Certs != nil {
		t.Errorf("empty cert_chain: certs %x, %v", b.Certs, err)
	}
}

func TestSNPMalformed(t *testing.T) {
	report, certs, _ := milan(t)
	good := string(snpEvidenceJSON(report, certs[:1], sevStyle{}))
	field := func(name string) string { // the JSON text of a report field's value
		_, rest, _ := strings.Cut(good, `"`+name+`":`)
		depth, i := 0, 0
		for ; i < len(rest); i++ {
			switch rest[i] {
			case '[', '{':
				depth++
			case ']', '}':
				depth--
			}
			if depth < 0 || (depth == 0 && rest[i] == ',') {
				break
			}
		}
		return `"` + name + `":` + rest[:i]
	}
	repl := func(name, value string) string { return strings.Replace(good, field(name), `"`+name+`":`+value, 1) }
	many := make([]string, maxCertEntries+1)
	for i := range many {
		many[i] = sevCert{"VCEK", []byte{1}}.json()
	}
	tests := []struct {
		name, in    string
		unsupported bool
	}{
		{"empty", ``, false},
		{"not an object", `[]`, false},
		{"truncated", good[:len(good)/2], false},
		{"trailing data", good + `{}`, false},
		{"oversized", `{"attestation_report":{},"x":"` + strings.Repeat("a", MaxEvidenceSize) + `"}`, false},
		{"unknown top-level field", strings.Replace(good, `{"attestation_report"`, `{"extra":1,"attestation_report"`, 1), false},
		{"no report", `{"cert_chain":null}`, false},
		{"duplicate field", strings.Replace(good, `"vmpl":`, `"vmpl":0,"vmpl":`, 1), false},
		{"unknown report field", strings.Replace(good, `"vmpl":`, `"vmpl2":0,"vmpl":`, 1), false},
		{"missing report field", strings.Replace(good, field("vmpl")+",", "", 1), false},
		{"sev 4 serialisation", strings.Replace(good, `"vmpl":`, `"_author_key_en":0,"vmpl":`, 1), true},
		{"version a string", repl("version", `"2"`), false},
		{"version negative", repl("version", `-2`), false},
		{"version fraction", repl("version", `2.0`), false},
		{"version exponent", repl("version", `2e0`), false},
		{"version over u32", repl("version", `4294967296`), false},
		{"version null", repl("version", `null`), false},
		{"policy over u64", repl("policy", `18446744073709551616`), false},
		{"cpuid over u8", repl("cpuid_step", `256`), false},
		{"report_data short", repl("report_data", jsonBytes(make([]byte, 63))), false},
		{"report_data long", repl("report_data", jsonBytes(make([]byte, 65))), false},
		{"report_data element 256", repl("report_data", "[256"+strings.Repeat(",0", 63)+"]"), false},
		{"report_data element null", repl("report_data", "[null"+strings.Repeat(",0", 63)+"]"), false},
		{"report_data leading zero", repl("report_data", "[01"+strings.Repeat(",0", 63)+"]"), false},
		{"report_data trailing comma", repl("report_data", "[0"+strings.Repeat(",0", 63)+",]"), false},
		{"report_data base64", repl("report_data", `"AAAA"`), false},
		{"tcb missing snp", repl("current_tcb", `{"fmc":null,"bootloader":1,"tee":0,"microcode":1}`), false},
		{"tcb unknown field", repl("current_tcb", `{"fmc":null,"bootloader":1,"tee":0,"snp":1,"microcode":1,"x":0}`), false},
		{"tcb mixed layouts", repl("current_tcb", `{"fmc":1,"bootloader":1,"tee":0,"snp":1,"microcode":1}`), false},
		{"version object wrong", repl("current", `{"major":1,"minor":2}`), false},
		{"signature short r", repl("signature", `{"r":[1],"s":`+jsonBytes(make([]byte, 72))+`}`), false},
		{"signature reserved field", repl("signature", `{"r":`+jsonBytes(make([]byte, 72))+`,"s":`+jsonBytes(make([]byte, 72))+`,"_reserved":[]}`), false},
		{"cert_chain an object", strings.Replace(good, field("cert_chain"), `"cert_chain":{}`, 1), false},
		{"cert type unknown", strings.Replace(good, `"cert_type":"VCEK"`, `"cert_type":"PEK"`, 1), false},
		{"cert type OTHER not a uuid", strings.Replace(good, `"cert_type":"VCEK"`, `"cert_type":{"OTHER":"nope"}`, 1), false},
		{"cert type OTHER with extra", strings.Replace(good, `"cert_type":"VCEK"`, `"cert_type":{"OTHER":"ecae0c0f-9502-43b1-afa2-0ae2e0d565b6","x":1}`, 1), false},
		{"cert data base64", strings.Replace(good, field("data"), `"data":"MII="`, 1), false},
		{"cert data oversized", strings.Replace(good, field("data"), `"data":[`+strings.Repeat("0,", maxCertEntrySize)+`0]`, 1), false},
		{"too many certs", strings.Replace(good, field("cert_chain"), `"cert_chain":[`+strings.Join(many, ",")+`]`, 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSNP([]byte(tt.in))
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("ParseSNP error = %v, want ErrMalformed", err)
			}
			if errors.Is(err, ErrUnsupported) != tt.unsupported {
				t.Errorf("ParseSNP error = %v; ErrUnsupported %v, want %v", err, errors.Is(err, ErrUnsupported), tt.unsupported)
			}
		})
	}
}
