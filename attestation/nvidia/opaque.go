package nvidia

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// How an opaque field's value becomes a claim.
type fieldKind int

const (
	kindHex     fieldKind = iota // bytes, as lower-case hex
	kindString                   // ASCII, trailing NULs and spaces dropped
	kindVBIOS                    // 8 bytes, as NVIDIA prints VBIOS versions: "96.00.9f.00.01"
	kindCounts                   // little-endian uint32s: a list of numbers
	kindPDIs                     // 8-byte NVSwitch PDIs: a list of hex strings
	kindNVDEC                    // one byte: 0xAA "enabled", 0x55 "disabled"
	kindUint                     // a little-endian integer of 1 to 8 bytes
	kindFeature                  // kindUint naming the GPU mode: SPT, MPT or PPCIE
)

// opaqueInvalid is OPAQUE_FIELD_ID_INVALID, which no report may carry.
const opaqueInvalid = 255

// opaqueField names the NVIDIA opaque data field id and says how its value
// decodes; ok is false for an id NVIDIA's verifiers do not know. The ids
// and names are those of nvtrust's local GPU verifier and NVIDIA's
// attestation SDK (OPAQUE_FIELD_ID_*), in lower case.
func opaqueField(id uint16) (name string, kind fieldKind, ok bool) {
	switch id {
	case 1:
		return "cert_issuer_name", kindHex, true
	case 2:
		return "cert_authority_key_identifier", kindHex, true
	case 3:
		return "driver_version", kindString, true
	case 4:
		return "gpu_info", kindHex, true
	case 5:
		return "sku", kindHex, true
	case 6:
		return "vbios_version", kindVBIOS, true
	case 7:
		return "manufacturer_id", kindHex, true
	case 8:
		return "tamper_detection", kindHex, true
	case 9:
		return "smc", kindHex, true
	case 10:
		return "vpr", kindHex, true
	case 11:
		return "nvdec0_status", kindNVDEC, true
	case 12:
		return "measurement_count", kindCounts, true // OPAQUE_FIELD_ID_MSRSCNT
	case 13:
		return "cpr_info", kindHex, true
	case 14:
		return "board_id", kindHex, true
	case 15:
		return "chip_sku", kindString, true
	case 16:
		return "chip_sku_mod", kindString, true
	case 17:
		return "project", kindString, true
	case 18:
		return "project_sku", kindString, true
	case 19:
		return "project_sku_mod", kindHex, true
	case 20:
		return "fwid", kindHex, true
	case 21:
		return "protected_pcie_status", kindHex, true
	case 22:
		return "switch_pdi", kindPDIs, true
	case 23:
		return "floorswept_ports", kindHex, true
	case 24:
		return "position_id", kindHex, true
	case 25:
		return "lock_switch_status", kindHex, true
	case 32:
		return "gpu_link_conn", kindHex, true
	case 33:
		return "sys_enable_status", kindHex, true
	case 34:
		return "opaque_data_version", kindUint, true
	case 35:
		return "chip_info", kindString, true
	case 36:
		return "feature_flag", kindFeature, true
	}
	return "", kindHex, false
}

// Field ids the verifier reads itself.
const (
	fieldDriverVersion = 3
	fieldVBIOSVersion  = 6
	fieldFWID          = 20
)

// Sizes of the structured opaque values.
const (
	vbiosSize     = 8
	countSize     = 4
	pdiSize       = 8
	nvdecEnabled  = 0xAA
	nvdecDisabled = 0x55
)

// parseOpaque splits the opaque data into its fields ([id u16][size
// u16][value], little-endian) and checks that each field the verifier
// knows decodes, that none appears twice and that the driver and VBIOS
// versions are there. base is data's offset in the report, for errors.
func parseOpaque(data []byte, base int) ([]OpaqueField, error) {
	p := &parser{b: data, base: base}
	var fields []OpaqueField
	seen := map[uint16]bool{}
	for p.off < len(data) {
		at := p.off
		h, err := p.take(opaqueHeaderSize, fmt.Sprintf("opaque field %d header", len(fields)))
		if err != nil {
			return nil, err
		}
		id := binary.LittleEndian.Uint16(h)
		name, kind, known := opaqueField(id)
		label := fmt.Sprintf("opaque field %d", id)
		if known {
			label += " (" + name + ")"
		}
		switch {
		case id == opaqueInvalid:
			return nil, p.errorf(at, label, "id %d is OPAQUE_FIELD_ID_INVALID", id)
		case seen[id]:
			return nil, p.errorf(at, label, "appears twice")
		}
		seen[id] = true
		value, err := p.take(int(binary.LittleEndian.Uint16(h[2:])), label)
		if err != nil {
			return nil, err
		}
		if known {
			if _, err := decodeOpaque(kind, value); err != nil {
				return nil, p.errorf(at+opaqueHeaderSize, label, "%v", err)
			}
		}
		fields = append(fields, OpaqueField{ID: id, Value: value})
	}
	for _, id := range []uint16{fieldDriverVersion, fieldVBIOSVersion} {
		if !seen[id] {
			name, _, _ := opaqueField(id)
			return nil, p.errorf(len(data), "OpaqueData", "no %s field (id %d)", name, id)
		}
	}
	return fields, nil
}

// opaqueClaims decodes the fields into claims: known fields by name,
// unknown ones under "opaque_unknown" by decimal id, as hex. A field that
// does not decode (ParseReport refuses those) is given as hex.
func opaqueClaims(fields []OpaqueField) map[string]any {
	claims := map[string]any{}
	unknown := map[string]any{}
	for _, f := range fields {
		name, kind, known := opaqueField(f.ID)
		if !known {
			unknown[strconv.Itoa(int(f.ID))] = hex.EncodeToString(f.Value)
			continue
		}
		v, err := decodeOpaque(kind, f.Value)
		if err != nil {
			v = hex.EncodeToString(f.Value)
		}
		claims[name] = v
	}
	if len(unknown) > 0 {
		claims["opaque_unknown"] = unknown
	}
	return claims
}

// opaqueValue returns the value of the field id, if the report carries it.
func (r *Report) opaqueValue(id uint16) ([]byte, bool) {
	for _, f := range r.Opaque {
		if f.ID == id {
			return f.Value, true
		}
	}
	return nil, false
}

// decodeOpaque decodes one opaque value of the given kind into its claim.
func decodeOpaque(kind fieldKind, v []byte) (any, error) {
	switch kind {
	case kindString:
		s := strings.TrimRight(string(v), "\x00 ")
		for i := range len(s) {
			if s[i] < 0x20 || s[i] > 0x7e {
				return nil, fmt.Errorf("byte %d is 0x%02x, not printable ASCII", i, s[i])
			}
		}
		return s, nil
	case kindVBIOS:
		if len(v) != vbiosSize {
			return nil, fmt.Errorf("%d bytes, want %d", len(v), vbiosSize)
		}
		// NVIDIA prints the first four bytes backwards, then the fifth
		// (nvtrust's format_vbios_version): 00 9f 00 96 01 … is 96.00.9f.00.01.
		return fmt.Sprintf("%02x.%02x.%02x.%02x.%02x", v[3], v[2], v[1], v[0], v[4]), nil
	case kindCounts:
		if len(v)%countSize != 0 {
			return nil, fmt.Errorf("%d bytes, not a multiple of %d", len(v), countSize)
		}
		counts := make([]any, 0, len(v)/countSize)
		for i := 0; i < len(v); i += countSize {
			counts = append(counts, int64(binary.LittleEndian.Uint32(v[i:])))
		}
		return counts, nil
	case kindPDIs:
		if len(v)%pdiSize != 0 {
			return nil, fmt.Errorf("%d bytes, not a multiple of %d", len(v), pdiSize)
		}
		pdis := make([]any, 0, len(v)/pdiSize)
		for i := 0; i < len(v); i += pdiSize {
			pdis = append(pdis, hex.EncodeToString(v[i:i+pdiSize]))
		}
		return pdis, nil
	case kindNVDEC:
		switch {
		case len(v) == 1 && v[0] == nvdecEnabled:
			return "enabled", nil
		case len(v) == 1 && v[0] == nvdecDisabled:
			return "disabled", nil
		}
		return nil, fmt.Errorf("%x, want aa (enabled) or 55 (disabled)", v)
	case kindUint, kindFeature:
		if len(v) == 0 || len(v) > 8 {
			return nil, fmt.Errorf("%d bytes, want 1 to 8", len(v))
		}
		var buf [8]byte
		copy(buf[:], v)
		n := binary.LittleEndian.Uint64(buf[:])
		if kind == kindUint {
			return n, nil
		}
		switch n {
		case 0:
			return "SPT", nil // single GPU passthrough
		case 1:
			return "MPT", nil // multi-GPU passthrough
		case 2:
			return "PPCIE", nil // protected PCIe
		}
		return fmt.Sprintf("unknown (%d)", n), nil
	}
	return hex.EncodeToString(v), nil
}
