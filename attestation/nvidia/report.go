package nvidia

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/kura-cc/kura/attestation"
)

// Sizes and bounds of an attestation report.
const (
	// MaxReportSize bounds a report before it is parsed. Hopper reports
	// are about 4 KiB (NVML hands out at most 8 KiB).
	MaxReportSize = 64 << 10
	// NonceSize is the size of the requester's and the responder's SPDM
	// nonces.
	NonceSize = 32
	// SignatureSize is the size of the ECDSA P-384 signature that ends
	// the report: r then s, 48 bytes each, big-endian.
	SignatureSize = 96
	// maxOpaqueSize is the largest OpaqueData SPDM 1.1 allows.
	maxOpaqueSize = 1024
)

// SPDM 1.1 (DMTF DSP0274 1.1) codes the report uses.
const (
	spdmVersion11       = 0x11
	codeGetMeasurements = 0xE0 // request
	codeMeasurements    = 0x60 // response
	attrSignature       = 0x01 // GET_MEASUREMENTS Param1 bit 0: a signature is requested
	opAllMeasurements   = 0xFF // GET_MEASUREMENTS Param2: every measurement block
	opCountMeasurements = 0x00 // GET_MEASUREMENTS Param2: only their number
	specDMTF            = 0x01 // MeasurementSpecification bit 0: DMTF measurement format
	requestSize         = 4 + NonceSize + 1
	responseHeaderSize  = 8
	blockHeaderSize     = 4 // Index, MeasurementSpecification, MeasurementSize (2)
	dmtfHeaderSize      = 3 // DMTFSpecMeasurementValueType, DMTFSpecMeasurementValueSize (2)
	opaqueHeaderSize    = 4 // field id (2), size (2)
)

// Report is an NVIDIA GPU attestation report as the driver returns it
// (NVML nvmlDeviceGetConfComputeGpuAttestationReport): an SPDM 1.1
// GET_MEASUREMENTS request followed by the MEASUREMENTS response, whose
// signature by the device's attestation key covers both messages.
// ParseReport fills every field; nothing is verified.
type Report struct {
	// Version is the SPDM version of both messages (0x11).
	Version byte

	// RequestAttributes is the request's Param1; bit 0 asks for a
	// signature, which kura requires.
	RequestAttributes byte
	// MeasurementOperation is the request's Param2: 0xFF asks for every
	// measurement block, 1 to 0xFE for one.
	MeasurementOperation byte
	// Nonce is the requester's nonce, which the verifier chose.
	Nonce [NonceSize]byte
	// SlotID is the request's SlotIDParam: the certificate slot whose key
	// signs.
	SlotID byte

	// ResponseParam1 and ResponseParam2 are the response's Param1 and
	// Param2, as sent.
	ResponseParam1, ResponseParam2 byte
	// Blocks are the measurement blocks, in the order sent.
	Blocks []MeasurementBlock
	// ResponderNonce is the responder's nonce.
	ResponderNonce [NonceSize]byte
	// Opaque holds the NVIDIA fields of the response's OpaqueData, in the
	// order sent.
	Opaque []OpaqueField
	// Signature is the ECDSA P-384 signature, r then s.
	Signature [SignatureSize]byte

	// signed is the request and the response up to the signature: the
	// SPDM 1.1 L1/L2 transcript the signature covers.
	signed []byte
}

// MeasurementBlock is one SPDM measurement block in the DMTF measurement
// format.
type MeasurementBlock struct {
	// Index is the measurement index, 1 to 0xFE.
	Index byte
	// Specification is the MeasurementSpecification: 0x01, DMTF.
	Specification byte
	// ValueType is DMTFSpecMeasurementValueType: bit 7 set for a raw bit
	// stream, clear for a digest; bits 0–6 the kind of component.
	ValueType byte
	// Value is DMTFSpecMeasurementValue: on Hopper a SHA-384 digest.
	Value []byte
}

// OpaqueField is one NVIDIA field of the opaque data: a 16-bit field id
// and its value, as sent.
type OpaqueField struct {
	ID    uint16
	Value []byte
}

// ParseReport decodes an attestation report and checks its structure:
// every length is bounded by what contains it, the request asks for a
// signed response, the response answers it in the DMTF measurement
// format, each measurement index appears once, every opaque field the
// verifier knows decodes, the driver and VBIOS versions are present, and
// nothing follows the signature. It does no cryptography. Failures wrap
// attestation.ErrMalformed and name the field and its offset.
func ParseReport(data []byte) (*Report, error) {
	if len(data) > MaxReportSize {
		return nil, fmt.Errorf("%w: nvidia report is %d bytes, more than %d", attestation.ErrMalformed, len(data), MaxReportSize)
	}
	data = bytes.Clone(data) // the Report's slices must not change with the caller's buffer
	p := &parser{b: data}
	r := &Report{}
	if err := p.request(r); err != nil {
		return nil, err
	}
	if err := p.response(r); err != nil {
		return nil, err
	}
	r.signed = data[:len(data)-SignatureSize]
	return r, nil
}

// parser reads a report, or a part of one, front to back; off is the
// offset of the next byte, named in every error.
type parser struct {
	b    []byte
	off  int
	base int // offset of b in the report
}

// errorf returns an ErrMalformed naming field and its offset off in b.
func (p *parser) errorf(off int, field, format string, args ...any) error {
	return fmt.Errorf("%w: nvidia report: %s at offset %d: %s", attestation.ErrMalformed, field, p.base+off, fmt.Sprintf(format, args...))
}

// take returns the next n bytes, or an error naming field when fewer are
// left.
func (p *parser) take(n int, field string) ([]byte, error) {
	if n < 0 || n > len(p.b)-p.off {
		return nil, p.errorf(p.off, field, "needs %d bytes, %d left", n, len(p.b)-p.off)
	}
	b := p.b[p.off : p.off+n]
	p.off += n
	return b, nil
}

func (p *parser) request(r *Report) error {
	b, err := p.take(requestSize, "GET_MEASUREMENTS request")
	if err != nil {
		return err
	}
	switch {
	case b[0] != spdmVersion11:
		return p.errorf(0, "request SPDMVersion", "0x%02x, want 0x%02x (SPDM 1.1)", b[0], spdmVersion11)
	case b[1] != codeGetMeasurements:
		return p.errorf(1, "request RequestResponseCode", "0x%02x, want 0x%02x (GET_MEASUREMENTS)", b[1], codeGetMeasurements)
	case b[2]&attrSignature == 0:
		return p.errorf(2, "request Param1", "0x%02x does not ask for a signature", b[2])
	case b[3] == opCountMeasurements:
		return p.errorf(3, "request Param2", "asks for the number of measurements, not for measurements")
	}
	r.Version, r.RequestAttributes, r.MeasurementOperation = b[0], b[2], b[3]
	copy(r.Nonce[:], b[4:4+NonceSize])
	r.SlotID = b[4+NonceSize]
	return nil
}

func (p *parser) response(r *Report) error {
	start := p.off
	h, err := p.take(responseHeaderSize, "MEASUREMENTS response header")
	if err != nil {
		return err
	}
	switch {
	case h[0] != r.Version:
		return p.errorf(start, "response SPDMVersion", "0x%02x, but the request is 0x%02x", h[0], r.Version)
	case h[1] != codeMeasurements:
		return p.errorf(start+1, "response RequestResponseCode", "0x%02x, want 0x%02x (MEASUREMENTS)", h[1], codeMeasurements)
	}
	r.ResponseParam1, r.ResponseParam2 = h[2], h[3]
	n := int(h[4])
	switch {
	case n == 0:
		return p.errorf(start+4, "NumberOfBlocks", "no measurement blocks")
	case r.MeasurementOperation != opAllMeasurements && n != 1:
		return p.errorf(start+4, "NumberOfBlocks", "%d blocks answer a request for index %d alone", n, r.MeasurementOperation)
	}
	recordLen := int(h[5]) | int(h[6])<<8 | int(h[7])<<16
	recordOff := p.off
	record, err := p.take(recordLen, "MeasurementRecord")
	if err != nil {
		return err
	}
	if r.Blocks, err = parseRecord(record, recordOff, n, r.MeasurementOperation); err != nil {
		return err
	}
	nonce, err := p.take(NonceSize, "response Nonce")
	if err != nil {
		return err
	}
	copy(r.ResponderNonce[:], nonce)
	lenOff := p.off
	l, err := p.take(2, "OpaqueLength")
	if err != nil {
		return err
	}
	opaqueLen := int(binary.LittleEndian.Uint16(l))
	if opaqueLen > maxOpaqueSize {
		return p.errorf(lenOff, "OpaqueLength", "%d bytes, more than the %d SPDM 1.1 allows", opaqueLen, maxOpaqueSize)
	}
	opaqueOff := p.off
	opaque, err := p.take(opaqueLen, "OpaqueData")
	if err != nil {
		return err
	}
	if r.Opaque, err = parseOpaque(opaque, opaqueOff); err != nil {
		return err
	}
	sig, err := p.take(SignatureSize, "Signature")
	if err != nil {
		return err
	}
	copy(r.Signature[:], sig)
	if p.off != len(p.b) {
		return p.errorf(p.off, "end of report", "%d bytes follow the signature", len(p.b)-p.off)
	}
	return nil
}

// parseRecord decodes the n measurement blocks of record, which must fill
// it exactly. base is record's offset in the report, for errors.
func parseRecord(record []byte, base, n int, op byte) ([]MeasurementBlock, error) {
	p := &parser{b: record, base: base}
	blocks := make([]MeasurementBlock, 0, n)
	var seen [256]bool
	for i := range n {
		at := p.off
		h, err := p.take(blockHeaderSize, fmt.Sprintf("measurement block %d header", i))
		if err != nil {
			return nil, err
		}
		b := MeasurementBlock{Index: h[0], Specification: h[1]}
		size := int(binary.LittleEndian.Uint16(h[2:]))
		switch {
		case b.Index == 0 || b.Index == 0xFF:
			return nil, p.errorf(at, fmt.Sprintf("measurement block %d Index", i), "%d is reserved", b.Index)
		case seen[b.Index]:
			return nil, p.errorf(at, fmt.Sprintf("measurement block %d Index", i), "index %d appears twice", b.Index)
		case op != opAllMeasurements && b.Index != op:
			return nil, p.errorf(at, fmt.Sprintf("measurement block %d Index", i), "index %d answers a request for index %d", b.Index, op)
		case b.Specification != specDMTF:
			return nil, p.errorf(at+1, fmt.Sprintf("measurement %d MeasurementSpecification", b.Index), "0x%02x, want 0x%02x (DMTF)", b.Specification, specDMTF)
		case size < dmtfHeaderSize:
			return nil, p.errorf(at+2, fmt.Sprintf("measurement %d MeasurementSize", b.Index), "%d bytes, shorter than a DMTF measurement header", size)
		}
		seen[b.Index] = true
		m, err := p.take(size, fmt.Sprintf("measurement %d", b.Index))
		if err != nil {
			return nil, err
		}
		b.ValueType = m[0]
		if vs := int(binary.LittleEndian.Uint16(m[1:])); vs != size-dmtfHeaderSize {
			return nil, p.errorf(at+blockHeaderSize+1, fmt.Sprintf("measurement %d DMTFSpecMeasurementValueSize", b.Index), "%d, but MeasurementSize leaves %d bytes for the value", vs, size-dmtfHeaderSize)
		}
		b.Value = m[dmtfHeaderSize:]
		blocks = append(blocks, b)
	}
	if p.off != len(record) {
		return nil, p.errorf(p.off, "MeasurementRecord", "%d bytes follow the %d blocks within MeasurementRecordLength %d", len(record)-p.off, n, len(record))
	}
	return blocks, nil
}

// Marshal encodes r as the driver does, signature included: the inverse of
// ParseReport (ParseReport(b).Marshal() == b). Tools that build reports,
// such as package nvidiatest's test GPU, sign SHA-384 of all but its last
// SignatureSize bytes.
func (r *Report) Marshal() []byte {
	var b []byte
	b = append(b, r.Version, codeGetMeasurements, r.RequestAttributes, r.MeasurementOperation)
	b = append(b, r.Nonce[:]...)
	b = append(b, r.SlotID)
	var record []byte
	for _, blk := range r.Blocks {
		record = append(record, blk.Index, blk.Specification)
		record = binary.LittleEndian.AppendUint16(record, uint16(dmtfHeaderSize+len(blk.Value)))
		record = append(record, blk.ValueType)
		record = binary.LittleEndian.AppendUint16(record, uint16(len(blk.Value)))
		record = append(record, blk.Value...)
	}
	b = append(b, r.Version, codeMeasurements, r.ResponseParam1, r.ResponseParam2, byte(len(r.Blocks)))
	b = append(b, byte(len(record)), byte(len(record)>>8), byte(len(record)>>16))
	b = append(b, record...)
	b = append(b, r.ResponderNonce[:]...)
	var opaque []byte
	for _, f := range r.Opaque {
		opaque = binary.LittleEndian.AppendUint16(opaque, f.ID)
		opaque = binary.LittleEndian.AppendUint16(opaque, uint16(len(f.Value)))
		opaque = append(opaque, f.Value...)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(opaque)))
	b = append(b, opaque...)
	return append(b, r.Signature[:]...)
}
