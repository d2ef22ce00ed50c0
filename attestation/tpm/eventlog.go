package tpm

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/kura-cc/kura/attestation"
)

// Limits on a TCG event log beyond its size (attestation.MaxEventLogSize).
const (
	maxEvents       = 8192
	maxEventData    = 64 << 10
	maxAlgorithms   = 8
	maxDescription  = 64
	numPCRs         = 24
	evNoAction      = 0x00000003
	specIDSignature = "Spec ID Event03\x00"
	localitySig     = "StartupLocality\x00"
)

// banks maps the TPM algorithm ids of the PCR banks kura replays to their
// names and hashes.
var banks = map[uint16]struct {
	name string
	hash crypto.Hash
}{
	0x0004: {"sha1", crypto.SHA1}, 0x000B: {"sha256", crypto.SHA256},
	0x000C: {"sha384", crypto.SHA384}, 0x000D: {"sha512", crypto.SHA512},
}

// eventTypes names the PC Client event types (TCG PC Client Platform
// Firmware Profile §10.4.1).
var eventTypes = map[uint32]string{
	0x0: "EV_PREBOOT_CERT", 0x1: "EV_POST_CODE", 0x3: "EV_NO_ACTION", 0x4: "EV_SEPARATOR",
	0x5: "EV_ACTION", 0x6: "EV_EVENT_TAG", 0x7: "EV_S_CRTM_CONTENTS", 0x8: "EV_S_CRTM_VERSION",
	0x9: "EV_CPU_MICROCODE", 0xA: "EV_PLATFORM_CONFIG_FLAGS", 0xB: "EV_TABLE_OF_DEVICES",
	0xC: "EV_COMPACT_HASH", 0xD: "EV_IPL", 0xE: "EV_IPL_PARTITION_DATA", 0xF: "EV_NONHOST_CODE",
	0x10: "EV_NONHOST_CONFIG", 0x11: "EV_NONHOST_INFO", 0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
	0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG", 0x80000002: "EV_EFI_VARIABLE_BOOT",
	0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION", 0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
	0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER", 0x80000006: "EV_EFI_GPT_EVENT",
	0x80000007: "EV_EFI_ACTION", 0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
	0x80000009: "EV_EFI_HANDOFF_TABLES", 0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
	0x8000000B: "EV_EFI_HANDOFF_TABLES2", 0x8000000C: "EV_EFI_VARIABLE_BOOT2",
	0x800000E0: "EV_EFI_VARIABLE_AUTHORITY", 0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB",
	0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}

// algSize is one entry of the Spec ID event's digest sizes.
type algSize struct {
	alg  uint16
	size int
}

// event is one measurement: from the TCG log (a TCG_PCR_EVENT2) or from the
// IMA list. Digests maps an algorithm id to the value extended into that
// bank; data is the event data as logged.
type event struct {
	pcr     int
	typ     uint32
	digests []digest
	data    []byte
}

type digest struct {
	alg   uint16
	value []byte
}

// eventLog is a parsed crypto-agile TCG PC Client event log. Nothing in it
// is verified: only a replay that gives quoted PCR values makes it
// meaningful.
type eventLog struct {
	header   []byte // the first event, TCG_PCClientPCREvent, as given
	algs     []algSize
	locality byte // from a StartupLocality EV_NO_ACTION event, else 0
	events   []event
}

// parseEventLog parses a crypto-agile (TCG_PCR_EVENT2) PC Client event log:
// a Spec ID event in the SHA-1 format, then events carrying one digest for
// each algorithm the Spec ID event lists. Trailing bytes, unknown sizes and
// PCR indices above 23 are refused.
func parseEventLog(data []byte) (*eventLog, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: event log: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(data) > attestation.MaxEventLogSize {
		return nil, bad("%d bytes, limit is %d", len(data), attestation.MaxEventLogSize)
	}
	r := reader{b: data}
	// TCG_PCClientPCREvent: pcrIndex, eventType, digest[20], eventSize, event.
	pcr, typ := r.u32(), r.u32()
	sha1 := r.bytes(20)
	size := r.u32()
	spec := r.bytes(int(min(size, maxEventData+1)))
	if r.err != nil {
		return nil, bad("truncated Spec ID event")
	}
	if pcr != 0 || typ != evNoAction || !allZero(sha1) || size > maxEventData {
		return nil, bad("the first event is not a Spec ID event (PCR 0, EV_NO_ACTION, zero digest): not a crypto-agile log")
	}
	log := &eventLog{header: data[:r.off]}
	s := reader{b: spec}
	if string(s.bytes(16)) != specIDSignature {
		return nil, bad("Spec ID event signature is not %q: only crypto-agile logs are supported", strings.TrimRight(specIDSignature, "\x00"))
	}
	s.u32()    // platformClass
	s.bytes(3) // specVersionMinor, specVersionMajor, specErrata
	s.bytes(1) // uintnSize
	n := s.u32()
	if s.err != nil || n == 0 || n > maxAlgorithms {
		return nil, bad("Spec ID event lists %d algorithms, want 1 to %d", n, maxAlgorithms)
	}
	for range n {
		alg, size := s.u16(), s.u16()
		if s.err != nil {
			return nil, bad("truncated Spec ID event")
		}
		if size == 0 || size > attestation.MaxPCRValueSize {
			return nil, bad("algorithm %#04x has digest size %d", alg, size)
		}
		if b, ok := banks[alg]; ok && b.hash.Size() != int(size) {
			return nil, bad("algorithm %s has digest size %d, want %d", b.name, size, b.hash.Size())
		}
		if slices.ContainsFunc(log.algs, func(a algSize) bool { return a.alg == alg }) {
			return nil, bad("algorithm %#04x listed twice", alg)
		}
		log.algs = append(log.algs, algSize{alg, int(size)})
	}
	vendor := s.u8()
	s.bytes(int(vendor))
	if s.err != nil || s.off != len(spec) {
		return nil, bad("Spec ID event has truncated or trailing bytes")
	}

	for r.off < len(data) {
		if len(log.events) == maxEvents {
			return nil, bad("more than %d events", maxEvents)
		}
		start := r.off
		e := event{pcr: int(r.u32()), typ: r.u32()}
		count := r.u32()
		if r.err == nil && count != uint32(len(log.algs)) {
			return nil, bad("event %d at offset %d has %d digests, the Spec ID event lists %d algorithms", len(log.events)+1, start, count, len(log.algs))
		}
		for _, a := range log.algs {
			if r.err != nil {
				break
			}
			alg := r.u16()
			if r.err == nil && alg != a.alg {
				return nil, bad("event %d at offset %d has digests out of the Spec ID event's order (%#04x where %#04x is due)", len(log.events)+1, start, alg, a.alg)
			}
			e.digests = append(e.digests, digest{alg, r.bytes(a.size)})
		}
		size := r.u32()
		if r.err == nil && size > maxEventData {
			return nil, bad("event %d at offset %d has %d bytes of data, limit is %d", len(log.events)+1, start, size, maxEventData)
		}
		e.data = r.bytes(int(size))
		if r.err != nil {
			return nil, bad("event %d at offset %d is truncated", len(log.events)+1, start)
		}
		if e.pcr >= numPCRs {
			return nil, bad("event %d at offset %d is for PCR %d, want 0 to %d", len(log.events)+1, start, e.pcr, numPCRs-1)
		}
		if e.typ == evNoAction && e.pcr == 0 && len(e.data) == len(localitySig)+1 && string(e.data[:len(localitySig)]) == localitySig {
			log.locality = e.data[len(localitySig)]
		}
		log.events = append(log.events, e)
	}
	return log, nil
}

// marshal encodes the log; for a parsed log it gives the input back.
func (l *eventLog) marshal() []byte {
	out := bytes.Clone(l.header)
	for _, e := range l.events {
		out = binary.LittleEndian.AppendUint32(out, uint32(e.pcr))
		out = binary.LittleEndian.AppendUint32(out, e.typ)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e.digests)))
		for _, d := range e.digests {
			out = binary.LittleEndian.AppendUint16(out, d.alg)
			out = append(out, d.value...)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e.data)))
		out = append(out, e.data...)
	}
	return out
}

// typeName names an event type, or gives it in hex.
func typeName(t uint32) string {
	if n, ok := eventTypes[t]; ok {
		return n
	}
	return fmt.Sprintf("%#08x", t)
}

// describe returns a short description of event data: the text when it is
// printable (an EV_SEPARATOR's or EV_EFI_ACTION's, a GRUB command line),
// else its size.
func describe(data []byte) string {
	text := strings.TrimRight(string(data), "\x00")
	printable := text != ""
	for _, c := range text {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) {
			printable = false
			break
		}
	}
	switch {
	case printable && len(text) <= maxDescription:
		return text
	case printable:
		return text[:maxDescription-3] + "..."
	}
	return fmt.Sprintf("%d bytes of event data", len(data))
}

// claim renders the event for the claims (docs/spec/attestation.md §5).
func (e *event) claim(source string) map[string]any {
	ds := map[string]any{}
	for _, d := range e.digests {
		if b, ok := banks[d.alg]; ok {
			ds[b.name] = hex.EncodeToString(d.value)
		}
	}
	return map[string]any{"source": source, "pcr": e.pcr, "type": typeName(e.typ), "digests": ds, "description": describe(e.data),
		"data_verified": dataHashedTypes[e.typ]}
}

// reader reads little-endian fields, remembering the first overrun.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.err = fmt.Errorf("truncated")
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *reader) u8() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
