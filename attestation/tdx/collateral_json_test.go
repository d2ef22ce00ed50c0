package tdx

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
)

// collateralJSONMembers renders the vector's collateral as the one-object
// JSON and decodes it into its members, for a test to edit.
func collateralJSONMembers(t testing.TB, col *attestation.Collateral) map[string]any {
	t.Helper()
	data, err := MarshalCollateralJSON(col)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func encodeMembers(t testing.TB, m map[string]any) []byte {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestCollateralJSONRoundTrip converts each captured collateral directory
// to the one-object JSON and back: the PCS bodies, chains and CRLs come back
// byte for byte, and the real quote verifies with the same checks and the
// same outcome at its pinned time.
func TestCollateralJSONRoundTrip(t *testing.T) {
	for _, name := range captures.TDXVectors() {
		t.Run(name, func(t *testing.T) {
			vec := loadVector(t, name)
			data, err := MarshalCollateralJSON(vec.col)
			if err != nil {
				t.Fatal(err)
			}
			col, err := ParseCollateralJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			sameCollateral(t, col, vec.col)
			again, err := MarshalCollateralJSON(col)
			if err != nil || !bytes.Equal(again, data) {
				t.Errorf("re-marshalled JSON differs (%v)", err)
			}
			v := newTestVerifier(t, Config{Now: at(vec.at), CheckRevocations: true})
			wantRes, wantErr := v.Verify(context.Background(), bundle(vec.quote, vec.col))
			v = newTestVerifier(t, Config{Now: at(vec.at), CheckRevocations: true})
			gotRes, gotErr := v.Verify(context.Background(), bundle(vec.quote, col))
			if checkStatuses(gotRes) != checkStatuses(wantRes) {
				t.Errorf("checks:\n got %s\nwant %s", checkStatuses(gotRes), checkStatuses(wantRes))
			}
			if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
				t.Errorf("Verify() error = %v, want %v", gotErr, wantErr)
			}
		})
	}
}

// sameCollateral compares two collaterals field by field; the PCS bodies
// may differ in the trailing newline a saved file has.
func sameCollateral(t *testing.T, got, want *attestation.Collateral) {
	t.Helper()
	for _, f := range collateralFiles {
		g, w := *f.field(got), *f.field(want)
		if strings.HasSuffix(f.name, ".json") {
			g, w = bytes.TrimRight(g, "\n"), bytes.TrimRight(w, "\n")
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s differs", f.name)
		}
	}
}

// TestCollateralJSONTampering edits the JSON form of spr_e4's collateral;
// every edit that still parses must fail verification with the verifier's
// specific error at the check it concerns.
func TestCollateralJSONTampering(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	flipHex := func(k string, i int) func(m map[string]any) {
		return func(m map[string]any) {
			s := []byte(m[k].(string))
			if i < 0 {
				i += len(s)
			}
			s[i] = map[bool]byte{true: '0', false: '1'}[s[i] != '0']
			m[k] = string(s)
		}
	}
	tests := []struct {
		name      string
		tamper    func(m map[string]any)
		wantErr   error
		wantCheck string
	}{
		{"tcb info signature", flipHex("tcb_info_signature", 3), attestation.ErrBadSignature, checkTCBInfo},
		{"tcb info body", func(m map[string]any) {
			m["tcb_info"] = strings.Replace(m["tcb_info"].(string), `"tcbEvaluationDataNumber":15`, `"tcbEvaluationDataNumber":14`, 1)
		}, attestation.ErrBadSignature, checkTCBInfo},
		{"qe identity signature", flipHex("qe_identity_signature", 100), attestation.ErrBadSignature, checkQEID},
		{"qe identity body", func(m map[string]any) {
			m["qe_identity"] = strings.Replace(m["qe_identity"].(string), `"isvprodid":2`, `"isvprodid":3`, 1)
		}, attestation.ErrBadSignature, checkQEID},
		{"tcb info issuer chain", func(m map[string]any) {
			m["tcb_info_issuer_chain"] = m["pck_crl_issuer_chain"]
		}, attestation.ErrUntrustedRoot, checkTCBInfo},
		{"pck crl", flipHex("pck_crl", -10), attestation.ErrBadSignature, checkRevoke},
		{"root ca crl", flipHex("root_ca_crl", -10), attestation.ErrBadSignature, checkRevoke},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := collateralJSONMembers(t, vec.col)
			tc.tamper(m)
			col, err := ParseCollateralJSON(encodeMembers(t, m))
			if err != nil {
				t.Fatal(err)
			}
			v := newTestVerifier(t, Config{Now: at(vec.at), CheckRevocations: true})
			res, err := v.Verify(context.Background(), bundle(vec.quote, col))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Verify() error = %v, want %v", err, tc.wantErr)
			}
			last := res.Checks[len(res.Checks)-1]
			if last.Name != tc.wantCheck || last.Status != attestation.Failed {
				t.Errorf("failing check = %s %s, want %s failed (%s)", last.Name, last.Status, tc.wantCheck, checkStatuses(res))
			}
		})
	}
}

// TestParseCollateralJSON covers the accepted encodings and every refusal.
func TestParseCollateralJSON(t *testing.T) {
	vec := loadVector(t, "spr_e4")
	good := func() map[string]any { return collateralJSONMembers(t, vec.col) }
	byteArray := func(b []byte) []int {
		out := make([]int, len(b))
		for i, c := range b {
			out[i] = int(c)
		}
		return out
	}
	tests := []struct {
		name string
		edit func(m map[string]any)
		raw  func(data []byte) []byte // applied after edit and encoding
		ok   bool
	}{
		{name: "as marshalled", ok: true},
		{name: "upper-case hex", edit: func(m map[string]any) {
			m["pck_crl"] = strings.ToUpper(m["pck_crl"].(string))
			m["tcb_info_signature"] = strings.ToUpper(m["tcb_info_signature"].(string))
		}, ok: true},
		{name: "byte arrays (serde_json form)", edit: func(m map[string]any) {
			m["root_ca_crl"] = byteArray(vec.col.RootCACRL)
			sig, _ := hex.DecodeString(m["qe_identity_signature"].(string))
			m["qe_identity_signature"] = byteArray(sig)
		}, ok: true},
		{name: "PEM CRL", edit: func(m map[string]any) {
			m["pck_crl"] = hex.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: vec.col.PCKCRL}))
		}, ok: true},
		{name: "pck_certificate_chain", edit: func(m map[string]any) { m["pck_certificate_chain"] = "ignored" }, ok: true},
		{name: "null pck_certificate_chain", edit: func(m map[string]any) { m["pck_certificate_chain"] = nil }, ok: true},
		{name: "unknown member", edit: func(m map[string]any) { m["tcb_info_version"] = 3 }},
		{name: "missing member", edit: func(m map[string]any) { delete(m, "root_ca_crl") }},
		{name: "null member", edit: func(m map[string]any) { m["pck_crl"] = nil }},
		{name: "empty chain", edit: func(m map[string]any) { m["qe_identity_issuer_chain"] = "" }},
		{name: "chain not PEM", edit: func(m map[string]any) { m["tcb_info_issuer_chain"] = "MIIC" }},
		{name: "odd hex", edit: func(m map[string]any) { m["pck_crl"] = m["pck_crl"].(string) + "0" }},
		{name: "0x prefix", edit: func(m map[string]any) { m["pck_crl"] = "0x" + m["pck_crl"].(string) }},
		{name: "hex with space", edit: func(m map[string]any) { m["tcb_info_signature"] = " " + m["tcb_info_signature"].(string)[1:] }},
		{name: "short signature", edit: func(m map[string]any) { m["tcb_info_signature"] = m["tcb_info_signature"].(string)[2:] }},
		{name: "signature as base64", edit: func(m map[string]any) { m["qe_identity_signature"] = "AAAA" }},
		{name: "byte out of range", edit: func(m map[string]any) { m["root_ca_crl"] = []int{48, 256} }},
		{name: "tcb_info with whitespace", edit: func(m map[string]any) { m["tcb_info"] = " " + m["tcb_info"].(string) }},
		{name: "tcb_info not JSON", edit: func(m map[string]any) { m["tcb_info"] = "{tcbInfo}" }},
		{name: "tcb_info not a string", edit: func(m map[string]any) { m["tcb_info"] = map[string]any{"id": "TDX"} }},
		{name: "PEM CRL of another type", edit: func(m map[string]any) {
			m["pck_crl"] = hex.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vec.col.PCKCRL}))
		}},
		{name: "duplicate member", raw: func(d []byte) []byte { return append([]byte(`{"pck_crl":"00",`), d[1:]...) }},
		{name: "trailing data", raw: func(d []byte) []byte { return append(d, "{}"...) }},
		{name: "array", raw: func(d []byte) []byte { return []byte(`[` + string(d) + `]`) }},
		{name: "too large", raw: func(d []byte) []byte { return append(d, bytes.Repeat([]byte(" "), MaxCollateralJSONSize)...) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			if tc.edit != nil {
				tc.edit(m)
			}
			data := encodeMembers(t, m)
			if tc.raw != nil {
				data = tc.raw(data)
			}
			col, err := ParseCollateralJSON(data)
			if tc.ok {
				if err != nil {
					t.Fatalf("ParseCollateralJSON() error = %v", err)
				}
				sameCollateral(t, col, vec.col)
				return
			}
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("ParseCollateralJSON() error = %v, want ErrMalformed", err)
			}
		})
	}
}

// FuzzParseCollateralJSON: nothing panics, errors wrap ErrMalformed, and
// what parses marshals to JSON that parses to the same collateral and
// marshals to the same bytes.
func FuzzParseCollateralJSON(f *testing.F) {
	names := captures.TDXVectors()
	if len(names) == 0 {
		f.Fatal("no TDX captures to seed from")
	}
	for _, name := range names {
		data, err := MarshalCollateralJSON(loadVector(f, name).col)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"pck_crl":[1,2,3]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		col, err := ParseCollateralJSON(data)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out, err := MarshalCollateralJSON(col)
		if err != nil {
			t.Fatalf("parsed collateral does not marshal: %v", err)
		}
		again, err := ParseCollateralJSON(out)
		if err != nil {
			t.Fatalf("marshalled collateral does not parse: %v", err)
		}
		for _, f := range collateralFiles {
			if !bytes.Equal(*f.field(again), *f.field(col)) {
				t.Fatalf("%s differs after marshal and parse", f.name)
			}
		}
		if out2, err := MarshalCollateralJSON(again); err != nil || !bytes.Equal(out2, out) {
			t.Fatalf("second marshal differs (%v)", err)
		}
	})
}
