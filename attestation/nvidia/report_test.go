package nvidia

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
)

// TestParseVector parses the captured report and encodes it back byte for
// byte.
func TestParseVector(t *testing.T) {
	report, _, _, nonce := vector(t)
	r, err := ParseReport(report)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 0x11 || r.RequestAttributes != 0x01 || r.MeasurementOperation != 0xff || r.SlotID != 0 || !bytes.Equal(r.Nonce[:], nonce) {
		t.Errorf("request: version %#x, attributes %#x, operation %#x, slot %d, nonce %x", r.Version, r.RequestAttributes, r.MeasurementOperation, r.SlotID, r.Nonce)
	}
	if len(r.Blocks) != 64 || len(r.Opaque) != 14 {
		t.Fatalf("%d blocks, %d opaque fields; want 64 and 14", len(r.Blocks), len(r.Opaque))
	}
	for i, b := range r.Blocks {
		if int(b.Index) != i+1 || b.Specification != specDMTF || b.ValueType != 1 || len(b.Value) != 48 {
			t.Errorf("block %d: index %d, specification %d, value type %d, %d bytes", i, b.Index, b.Specification, b.ValueType, len(b.Value))
		}
	}
	if got := r.Marshal(); !bytes.Equal(got, report) {
		t.Error("the parsed report does not encode back to the capture")
	}
	if !bytes.Equal(r.signed, report[:len(report)-SignatureSize]) {
		t.Error("the signed transcript is not the report less its signature")
	}
	report[measurementOffset(0)] ^= 1
	if r.Blocks[0].Value[0] != 0 {
		t.Error("the Report shares the caller's buffer")
	}
}

// TestParseTruncated cuts the captured report at every length: each must
// fail as malformed, naming an offset.
func TestParseTruncated(t *testing.T) {
	report, _, _, _ := vector(t)
	for n := range len(report) {
		_, err := ParseReport(report[:n])
		if !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), "offset") {
			t.Fatalf("ParseReport(report[:%d]) = %v, want ErrMalformed naming an offset", n, err)
		}
	}
	for _, extra := range [][]byte{{0}, bytes.Repeat([]byte{0xff}, 100)} {
		if _, err := ParseReport(append(bytes.Clone(report), extra...)); !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), "follow the signature") {
			t.Errorf("ParseReport with %d trailing bytes = %v, want ErrMalformed", len(extra), err)
		}
	}
	if _, err := ParseReport(make([]byte, MaxReportSize+1)); !errors.Is(err, attestation.ErrMalformed) {
		t.Errorf("ParseReport of %d bytes = %v, want ErrMalformed", MaxReportSize+1, err)
	}
}

// opaqueOffset returns where the OpaqueLength field of the encoded report
// b of r is.
func opaqueOffset(r *Report, b []byte) int {
	n := 0
	for _, f := range r.Opaque {
		n += opaqueHeaderSize + len(f.Value)
	}
	return len(b) - SignatureSize - n - 2
}

// TestParseMalformed changes one thing in a well-formed report at a time;
// each must fail as malformed, naming the field.
func TestParseMalformed(t *testing.T) {
	nonce := bytes.Repeat([]byte{1}, NonceSize)
	if _, err := ParseReport(testReport(nonce, nil).Marshal()); err != nil {
		t.Fatalf("the test report does not parse: %v", err)
	}
	withOpaque := func(fields ...OpaqueField) func(*Report) {
		return func(r *Report) { r.Opaque = append(r.Opaque, fields...) }
	}
	cases := []struct {
		name   string
		change func(*Report)
		raw    func(r *Report, b []byte) []byte
		want   string
	}{
		{name: "SPDM 1.2", change: func(r *Report) { r.Version = 0x12 }, want: "request SPDMVersion at offset 0"},
		{name: "not GET_MEASUREMENTS", raw: func(_ *Report, b []byte) []byte { b[1] = 0x81; return b }, want: "request RequestResponseCode at offset 1"},
		{name: "no signature requested", change: func(r *Report) { r.RequestAttributes = 0 }, want: "does not ask for a signature"},
		{name: "count requested", change: func(r *Report) { r.MeasurementOperation = 0 }, want: "number of measurements"},
		{name: "response version", raw: func(_ *Report, b []byte) []byte { b[requestSize] = 0x10; return b }, want: "response SPDMVersion at offset 37"},
		{name: "response code", raw: func(_ *Report, b []byte) []byte { b[requestSize+1] = 0x7f; return b }, want: "response RequestResponseCode at offset 38"},
		{name: "no blocks", change: func(r *Report) { r.Blocks = nil }, want: "no measurement blocks"},
		{name: "three blocks for one index", change: func(r *Report) { r.MeasurementOperation = 2 }, want: "NumberOfBlocks"},
		{name: "block for another index", change: func(r *Report) { r.MeasurementOperation = 5; r.Blocks = r.Blocks[:1] }, want: "answers a request for index 5"},
		{name: "index 0", change: func(r *Report) { r.Blocks[1].Index = 0 }, want: "measurement block 1 Index at offset 100: 0 is reserved"},
		{name: "index 255", change: func(r *Report) { r.Blocks[2].Index = 255 }, want: "255 is reserved"},
		{name: "index twice", change: func(r *Report) { r.Blocks[2].Index = 1 }, want: "index 1 appears twice"},
		{name: "not DMTF", change: func(r *Report) { r.Blocks[0].Specification = 2 }, want: "measurement 1 MeasurementSpecification at offset 46"},
		{name: "value size", raw: func(_ *Report, b []byte) []byte { b[requestSize+8+5]++; return b }, want: "measurement 1 DMTFSpecMeasurementValueSize at offset 50"},
		{name: "measurement shorter than its header", raw: func(_ *Report, b []byte) []byte {
			b[requestSize+8+2], b[requestSize+8+3] = 2, 0
			return b
		}, want: "shorter than a DMTF measurement header"},
		{name: "measurement beyond the record", raw: func(_ *Report, b []byte) []byte { b[requestSize+8+3] = 1; return b }, want: "measurement 1 at offset 49: needs 307 bytes"},
		{name: "record longer than its blocks", raw: func(_ *Report, b []byte) []byte {
			n := int(b[requestSize+5]) + 2
			b[requestSize+5] = byte(n)
			at := requestSize + 8 + n - 2
			return append(b[:at], append([]byte{0, 0}, b[at:]...)...)
		}, want: "2 bytes follow the 3 blocks"},
		{name: "record beyond the report", raw: func(_ *Report, b []byte) []byte { b[requestSize+7] = 1; return b }, want: "MeasurementRecord at offset 45: needs 65701 bytes"},
		{name: "opaque data too long", change: withOpaque(OpaqueField{ID: 99, Value: make([]byte, maxOpaqueSize)}), want: "more than the 1024 SPDM 1.1 allows"},
		{name: "opaque data beyond the report", raw: func(r *Report, b []byte) []byte {
			binary.LittleEndian.PutUint16(b[opaqueOffset(r, b):], 1000)
			return b
		}, want: "OpaqueData at offset"},
		{name: "opaque field header cut", raw: func(r *Report, b []byte) []byte {
			at := opaqueOffset(r, b)
			binary.LittleEndian.PutUint16(b[at:], binary.LittleEndian.Uint16(b[at:])+2)
			end := len(b) - SignatureSize
			return append(b[:end], append([]byte{7, 0}, b[end:]...)...)
		}, want: "opaque field 5 header"},
		{name: "opaque field value cut", raw: func(r *Report, b []byte) []byte {
			at := opaqueOffset(r, b) + 2
			b[at+2] = 200 // driver_version's size
			return b
		}, want: "opaque field 3 (driver_version) at offset"},
		{name: "opaque id invalid", change: withOpaque(OpaqueField{ID: 255}), want: "OPAQUE_FIELD_ID_INVALID"},
		{name: "opaque field twice", change: withOpaque(OpaqueField{ID: 17, Value: []byte("1010")}), want: "opaque field 17 (project) at offset"},
		{name: "no driver version", change: func(r *Report) { r.Opaque = r.Opaque[1:] }, want: "no driver_version field (id 3)"},
		{name: "no VBIOS version", change: func(r *Report) { r.Opaque = append(r.Opaque[:1], r.Opaque[2:]...) }, want: "no vbios_version field (id 6)"},
		{name: "short VBIOS version", change: func(r *Report) { r.Opaque[1].Value = r.Opaque[1].Value[:7] }, want: "(vbios_version) at offset"},
		{name: "binary driver version", change: func(r *Report) { r.Opaque[0].Value = []byte("550\x01") }, want: "not printable ASCII"},
		{name: "driver version with a NUL inside", change: func(r *Report) { r.Opaque[0].Value = []byte("550\x0090") }, want: "not printable ASCII"},
		{name: "NVDEC status", change: func(r *Report) { r.Opaque[3].Value = []byte{0} }, want: "want aa (enabled) or 55 (disabled)"},
		{name: "NVDEC status twice as long", change: func(r *Report) { r.Opaque[3].Value = []byte{0xaa, 0xaa} }, want: "nvdec0_status"},
		{name: "measurement counts", change: func(r *Report) { r.Opaque[4].Value = r.Opaque[4].Value[:5] }, want: "not a multiple of 4"},
		{name: "switch PDIs", change: withOpaque(OpaqueField{ID: 22, Value: make([]byte, 7)}), want: "not a multiple of 8"},
		{name: "opaque data version too long", change: withOpaque(OpaqueField{ID: 34, Value: make([]byte, 9)}), want: "want 1 to 8"},
		{name: "empty feature flag", change: withOpaque(OpaqueField{ID: 36}), want: "(feature_flag)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testReport(nonce, nil)
			if tc.change != nil {
				tc.change(r)
			}
			b := r.Marshal()
			if tc.raw != nil {
				b = tc.raw(r, b)
			}
			_, err := ParseReport(b)
			if !errors.Is(err, attestation.ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseReport = %v, want ErrMalformed with %q", err, tc.want)
			}
		})
	}
}
