// Package tcglog parses TCG crypto-agile event logs (TCG_PCR_EVENT2 after a
// Spec ID event): the PC Client boot log a TPM's PCRs replay
// (attestation/tpm, docs/spec/attestation.md §4.6) and the CCEL log a TDX
// guest's RTMRs replay (attestation/tdx, §4.2).
//
// # Security model
//
// Parsing verifies nothing: a log is whatever its sender wrote. Only a
// replay that gives register values signed by hardware (quoted PCRs, a TD
// quote's RTMRs) makes its digests meaningful, and event data only where
// the digest is defined as its hash (CheckDataDigests). The parser is
// strict and bounded so that hostile input fails fast and by name.
package tcglog

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

// Limits on a log beyond its size (attestation.MaxEventLogSize).
const (
	maxEvents       = 8192
	maxEventData    = 64 << 10
	maxAlgorithms   = 8
	maxDescription  = 64
	specIDSignature = "Spec ID Event03\x00"
	localitySig     = "StartupLocality\x00"
)

// EvNoAction is the type of events that are logged but not extended.
const EvNoAction = 0x00000003

// Bank is a register bank kura replays: its name and hash.
type Bank struct {
	Name string
	Hash crypto.Hash
}

// Banks maps the TPM algorithm ids of the banks kura replays to their names
// and hashes. Callers must not modify it.
var Banks = map[uint16]Bank{
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

// AlgSize is one entry of the Spec ID event's digest sizes.
type AlgSize struct {
	Alg  uint16
	Size int
}

// Event is one TCG_PCR_EVENT2: the register it extends (a PCR index, or a
// CCEL's measurement register index), its type, one digest per algorithm
// of the Spec ID event, and its data as logged.
type Event struct {
	PCR     int
	Type    uint32
	Digests []Digest
	Data    []byte
}

// Digest is the value an event extends into the bank of Alg.
type Digest struct {
	Alg   uint16
	Value []byte
}

// Log is a parsed crypto-agile event log. Nothing in it is verified.
type Log struct {
	Header   []byte // the first event, TCG_PCClientPCREvent, as given
	Algs     []AlgSize
	Locality byte // from a StartupLocality EV_NO_ACTION event, else 0
	Events   []Event
	// Padding is what followed the last event when Options.Padding allowed
	// it: bytes all 0xFF or all 0x00.
	Padding []byte
}

// Options say what a log may hold.
type Options struct {
	// Registers is the number of register indices events may name (24
	// PCRs; 5 CCEL measurement registers, MRTD and RTMR0–3).
	Registers int
	// Index names the index in errors ("PCR", "MR index").
	Index string
	// Padding accepts, after an event, a tail of bytes all 0xFF or all
	// 0x00: a CCEL log area is larger than its log.
	Padding bool
}

// Parse parses a crypto-agile (TCG_PCR_EVENT2) event log: a Spec ID event
// in the SHA-1 format, then events carrying one digest for each algorithm
// the Spec ID event lists. Trailing bytes (except the padding opts allow),
// unknown sizes and indices beyond opts.Registers are refused, as
// attestation.ErrMalformed.
func Parse(data []byte, opts Options) (*Log, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: event log: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
	}
	if opts.Index == "" {
		opts.Index = "PCR"
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
	if pcr != 0 || typ != EvNoAction || !AllZero(sha1) || size > maxEventData {
		return nil, bad("the first event is not a Spec ID event (%s 0, EV_NO_ACTION, zero digest): not a crypto-agile log", opts.Index)
	}
	log := &Log{Header: data[:r.off]}
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
		if b, ok := Banks[alg]; ok && b.Hash.Size() != int(size) {
			return nil, bad("algorithm %s has digest size %d, want %d", b.Name, size, b.Hash.Size())
		}
		if slices.ContainsFunc(log.Algs, func(a AlgSize) bool { return a.Alg == alg }) {
			return nil, bad("algorithm %#04x listed twice", alg)
		}
		log.Algs = append(log.Algs, AlgSize{alg, int(size)})
	}
	vendor := s.u8()
	s.bytes(int(vendor))
	if s.err != nil || s.off != len(spec) {
		return nil, bad("Spec ID event has truncated or trailing bytes")
	}

	for r.off < len(data) {
		if opts.Padding && isPadding(data[r.off:]) {
			log.Padding = data[r.off:]
			break
		}
		if len(log.Events) == maxEvents {
			return nil, bad("more than %d events", maxEvents)
		}
		start := r.off
		e := Event{PCR: int(r.u32()), Type: r.u32()}
		count := r.u32()
		if r.err == nil && count != uint32(len(log.Algs)) {
			return nil, bad("event %d at offset %d has %d digests, the Spec ID event lists %d algorithms", len(log.Events)+1, start, count, len(log.Algs))
		}
		for _, a := range log.Algs {
			if r.err != nil {
				break
			}
			alg := r.u16()
			if r.err == nil && alg != a.Alg {
				return nil, bad("event %d at offset %d has digests out of the Spec ID event's order (%#04x where %#04x is due)", len(log.Events)+1, start, alg, a.Alg)
			}
			e.Digests = append(e.Digests, Digest{alg, r.bytes(a.Size)})
		}
		size := r.u32()
		if r.err == nil && size > maxEventData {
			return nil, bad("event %d at offset %d has %d bytes of data, limit is %d", len(log.Events)+1, start, size, maxEventData)
		}
		e.Data = r.bytes(int(size))
		if r.err != nil {
			return nil, bad("event %d at offset %d is truncated", len(log.Events)+1, start)
		}
		if e.PCR < 0 || e.PCR >= opts.Registers {
			return nil, bad("event %d at offset %d is for %s %d, want 0 to %d", len(log.Events)+1, start, opts.Index, e.PCR, opts.Registers-1)
		}
		if e.Type == EvNoAction && e.PCR == 0 && len(e.Data) == len(localitySig)+1 && string(e.Data[:len(localitySig)]) == localitySig {
			log.Locality = e.Data[len(localitySig)]
		}
		log.Events = append(log.Events, e)
	}
	return log, nil
}

// isPadding reports whether b is all 0xFF or all 0x00. It stops at the
// first byte that differs from b[0], so checking before every event costs
// little.
func isPadding(b []byte) bool {
	if len(b) == 0 || (b[0] != 0x00 && b[0] != 0xff) {
		return false
	}
	for _, x := range b {
		if x != b[0] {
			return false
		}
	}
	return true
}

// Marshal encodes the log; for a parsed log it gives the input back.
func (l *Log) Marshal() []byte {
	out := bytes.Clone(l.Header)
	for _, e := range l.Events {
		out = binary.LittleEndian.AppendUint32(out, uint32(e.PCR))
		out = binary.LittleEndian.AppendUint32(out, e.Type)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e.Digests)))
		for _, d := range e.Digests {
			out = binary.LittleEndian.AppendUint16(out, d.Alg)
			out = append(out, d.Value...)
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(len(e.Data)))
		out = append(out, e.Data...)
	}
	return append(out, l.Padding...)
}

// TypeName names an event type, or gives it in hex.
func TypeName(t uint32) string {
	if n, ok := eventTypes[t]; ok {
		return n
	}
	return fmt.Sprintf("%#08x", t)
}

// Describe returns a short description of event data: the text when it is
// printable (an EV_SEPARATOR's or EV_EFI_ACTION's, a GRUB command line),
// else its size.
func Describe(data []byte) string {
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

// Claim renders the event for the claims (docs/spec/attestation.md §5).
func (e *Event) Claim(source string) map[string]any {
	ds := map[string]any{}
	for _, d := range e.Digests {
		if b, ok := Banks[d.Alg]; ok {
			ds[b.Name] = hex.EncodeToString(d.Value)
		}
	}
	return map[string]any{"source": source, "pcr": e.PCR, "type": TypeName(e.Type), "digests": ds, "description": Describe(e.Data),
		"data_verified": dataHashedTypes[e.Type]}
}

// dataHashedTypes are the event types whose digests are, by the PC Client
// Platform Firmware Profile, the hashes of their event data: for them the
// data is bound by the replay too.
var dataHashedTypes = map[uint32]bool{0x4: true, 0x5: true, 0x80000007: true} // EV_SEPARATOR, EV_ACTION, EV_EFI_ACTION

// CheckDataDigests checks, for the event types whose digests hash their
// data (EV_SEPARATOR, EV_ACTION, EV_EFI_ACTION), that every digest of a
// bank in Banks does.
func (e *Event) CheckDataDigests() error {
	if !dataHashedTypes[e.Type] {
		return nil
	}
	for _, d := range e.Digests {
		b, ok := Banks[d.Alg]
		if !ok {
			continue
		}
		h := b.Hash.New()
		h.Write(e.Data)
		if !bytes.Equal(h.Sum(nil), d.Value) {
			return fmt.Errorf("its %s digest %x is not the hash of its event data %q", b.Name, d.Value, Describe(e.Data))
		}
	}
	return nil
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

// AllZero reports whether b is all zero bytes.
func AllZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// SpecIDHeader returns a Spec ID event (TCG_PCClientPCREvent) for a log
// whose events carry digests of algs, in that order: the header a log
// built by a test or a tool starts with.
func SpecIDHeader(algs ...uint16) []byte {
	spec := []byte(specIDSignature)
	spec = binary.LittleEndian.AppendUint32(spec, 0) // platformClass: client
	spec = append(spec, 0, 2, 0, 2)                  // spec 2.0, errata 0, uintnSize 2 (UINT64)
	spec = binary.LittleEndian.AppendUint32(spec, uint32(len(algs)))
	for _, a := range algs {
		spec = binary.LittleEndian.AppendUint16(spec, a)
		spec = binary.LittleEndian.AppendUint16(spec, uint16(Banks[a].Hash.Size()))
	}
	spec = append(spec, 0) // no vendor info
	h := binary.LittleEndian.AppendUint32(nil, 0)
	h = binary.LittleEndian.AppendUint32(h, EvNoAction)
	h = append(h, make([]byte, 20)...)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(spec)))
	return append(h, spec...)
}
