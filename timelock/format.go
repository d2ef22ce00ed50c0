package timelock

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Magic starts every kura time-lock envelope (docs/spec/timelock.md §3).
const Magic = "\x89KURATL\n"

// Format limits (docs/spec/timelock.md §3).
const (
	// Version is the envelope version this package writes and reads.
	Version = 1
	// MaxRecipients bounds the recipients of one file.
	MaxRecipients = 64
	// MaxHeaderSize bounds an envelope header and a tlock (age) header.
	MaxHeaderSize = 256 << 10
	// maxWrapped bounds one recipient's HPKE ciphertext (X-Wing: 1 + 1120
	// + 32 + 16 bytes).
	maxWrapped = 2048
	// maxTlockCiphertext bounds the IBE ciphertext (96 + 16 + 16 bytes for
	// keys on G2).
	maxTlockCiphertext = 256
)

// Formats Inspect reports.
const (
	// FormatTlock is drand's standard tlock format (an age file).
	FormatTlock = "tlock"
	// FormatKura is the kura time-lock envelope, sealed to recipients.
	FormatKura = "kura-timelock-v1"
)

const (
	ageIntro    = "age-encryption.org/v1\n"
	armorIntro  = "-----BEGIN AGE ENCRYPTED FILE-----"
	prefixLen   = 8 + 2 + 4
	fingerprLen = 32
)

// envelope is the parsed kura header.
type envelope struct {
	chainHash  [32]byte
	round      uint64
	genesis    int64
	period     uint32
	scheme     string
	tlockCT    []byte
	recipients []wrapped
	raw        []byte // the exact header bytes
}

type wrapped struct {
	fingerprint [fingerprLen]byte
	ct          []byte
}

func (e *envelope) marshal() ([]byte, error) {
	if len(e.recipients) < 1 || len(e.recipients) > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients: want 1 to %d", ErrMalformed, len(e.recipients), MaxRecipients)
	}
	if len(e.scheme) < 1 || len(e.scheme) > 64 || len(e.tlockCT) < 1 || len(e.tlockCT) > maxTlockCiphertext {
		return nil, fmt.Errorf("%w: scheme or time-lock ciphertext out of range", ErrMalformed)
	}
	b := make([]byte, 0, 512)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, Version)
	b = binary.BigEndian.AppendUint32(b, 0) // header_len, set below
	b = append(b, e.chainHash[:]...)
	b = binary.BigEndian.AppendUint64(b, e.round)
	b = binary.BigEndian.AppendUint64(b, uint64(e.genesis))
	b = binary.BigEndian.AppendUint32(b, e.period)
	b = append(b, byte(len(e.scheme)))
	b = append(b, e.scheme...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.tlockCT)))
	b = append(b, e.tlockCT...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.recipients)))
	for _, w := range e.recipients {
		if len(w.ct) < 1 || len(w.ct) > maxWrapped {
			return nil, fmt.Errorf("%w: wrapped key of %d bytes", ErrMalformed, len(w.ct))
		}
		b = append(b, w.fingerprint[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(w.ct)))
		b = append(b, w.ct...)
	}
	if len(b) > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrMalformed, len(b), MaxHeaderSize)
	}
	binary.BigEndian.PutUint32(b[10:], uint32(len(b)))
	e.raw = b
	return b, nil
}

// readEnvelope reads exactly one envelope header from r.
func readEnvelope(r io.Reader) (*envelope, error) {
	pre := make([]byte, prefixLen)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrTampered, unexpected(err))
	}
	if string(pre[:8]) != Magic {
		return nil, fmt.Errorf("%w: not a kura time-lock envelope", ErrMalformed)
	}
	if v := binary.BigEndian.Uint16(pre[8:]); v != Version {
		return nil, fmt.Errorf("%w: envelope version %d: this kura reads version %d", ErrMalformed, v, Version)
	}
	n := binary.BigEndian.Uint32(pre[10:])
	if n < prefixLen || n > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d out of range", ErrMalformed, n)
	}
	raw := make([]byte, n)
	copy(raw, pre)
	if _, err := io.ReadFull(r, raw[prefixLen:]); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrTampered, unexpected(err))
	}
	return parseEnvelope(raw)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseEnvelope parses an exact header; trailing bytes are an error.
func parseEnvelope(raw []byte) (*envelope, error) {
	bad := func(what string) error { return fmt.Errorf("%w: envelope header: %s", ErrMalformed, what) }
	if len(raw) < prefixLen || string(raw[:8]) != Magic {
		return nil, bad("bad magic")
	}
	if binary.BigEndian.Uint16(raw[8:]) != Version {
		return nil, bad("unsupported version")
	}
	if int(binary.BigEndian.Uint32(raw[10:])) != len(raw) {
		return nil, bad("header length mismatch")
	}
	p := parser{b: raw[prefixLen:]}
	e := &envelope{raw: raw}
	copy(e.chainHash[:], p.take(32))
	e.round = p.u64()
	g := p.u64()
	e.period = p.u32()
	e.scheme = string(p.take(int(p.u8())))
	e.tlockCT = bytes.Clone(p.take(int(p.u16())))
	nr := int(p.u16())
	if p.err {
		return nil, bad("truncated")
	}
	if e.round == 0 || e.period == 0 || e.period > 3600 || g == 0 || g > maxUnix {
		return nil, bad("round, genesis or period out of range")
	}
	e.genesis = int64(g)
	if len(e.scheme) == 0 || len(e.tlockCT) == 0 || len(e.tlockCT) > maxTlockCiphertext {
		return nil, bad("empty scheme or time-lock ciphertext of bad size")
	}
	if nr < 1 || nr > MaxRecipients {
		return nil, bad(fmt.Sprintf("%d recipients: want 1 to %d", nr, MaxRecipients))
	}
	seen := map[[fingerprLen]byte]bool{}
	for range nr {
		var w wrapped
		copy(w.fingerprint[:], p.take(fingerprLen))
		w.ct = bytes.Clone(p.take(int(p.u16())))
		if p.err {
			return nil, bad("truncated")
		}
		if len(w.ct) == 0 || len(w.ct) > maxWrapped {
			return nil, bad("wrapped key of bad size")
		}
		if seen[w.fingerprint] {
			return nil, bad("duplicate recipient")
		}
		seen[w.fingerprint] = true
		e.recipients = append(e.recipients, w)
	}
	if len(p.b) != 0 {
		return nil, bad("trailing bytes")
	}
	return e, nil
}

type parser struct {
	b   []byte
	err bool
}

func (p *parser) take(n int) []byte {
	if p.err || n > len(p.b) {
		p.err = true
		return nil
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}
func (p *parser) u8() uint8 {
	if b := p.take(1); b != nil {
		return b[0]
	}
	return 0
}
func (p *parser) u16() uint16 {
	if b := p.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}
func (p *parser) u32() uint32 {
	if b := p.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}
func (p *parser) u64() uint64 {
	if b := p.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// tlockHeader is what kura reads from a standard tlock (age) header.
type tlockHeader struct {
	round     uint64
	chainHash string
	raw       []byte // the header bytes, through the "---" line
}

// readTlockHeader reads an age header from r (already de-armored) and
// returns its single tlock stanza. It reads no further than the header.
func readTlockHeader(r *bufio.Reader) (*tlockHeader, error) {
	var raw []byte
	line := func() (string, error) {
		l, err := r.ReadSlice('\n')
		raw = append(raw, l...)
		if len(raw) > MaxHeaderSize {
			return "", fmt.Errorf("%w: tlock header exceeds %d bytes", ErrMalformed, MaxHeaderSize)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("%w: tlock header line too long", ErrMalformed)
		}
		if err != nil {
			return "", fmt.Errorf("%w: tlock header: %w", ErrTampered, unexpected(err))
		}
		return string(l[:len(l)-1]), nil
	}
	intro, err := line()
	if err != nil {
		return nil, err
	}
	if intro+"\n" != ageIntro {
		return nil, fmt.Errorf("%w: not an age/tlock file", ErrMalformed)
	}
	var h *tlockHeader
	for {
		l, err := line()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(l, "--- ") {
			break
		}
		if !strings.HasPrefix(l, "-> ") {
			return nil, fmt.Errorf("%w: tlock header: unexpected line", ErrMalformed)
		}
		args := strings.Split(l[3:], " ")
		if args[0] != "tlock" || h != nil {
			return nil, fmt.Errorf("%w: want exactly one tlock stanza, found %q", ErrMalformed, args[0])
		}
		if len(args) != 3 {
			return nil, fmt.Errorf("%w: tlock stanza: want round and chain hash", ErrMalformed)
		}
		round, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil || round == 0 || strconv.FormatUint(round, 10) != args[1] {
			return nil, fmt.Errorf("%w: tlock stanza: bad round %q", ErrMalformed, args[1])
		}
		if err := checkHash(args[2]); err != nil {
			return nil, fmt.Errorf("%w: tlock stanza: bad chain hash", ErrMalformed)
		}
		h = &tlockHeader{round: round, chainHash: args[2]}
		// Body: base64 lines of 64 columns, ended by a shorter one.
		for {
			b, err := line()
			if err != nil {
				return nil, err
			}
			if _, err := base64.RawStdEncoding.Strict().DecodeString(b); err != nil || len(b) > 64 {
				return nil, fmt.Errorf("%w: tlock stanza body", ErrMalformed)
			}
			if len(b) < 64 {
				break
			}
		}
	}
	if h == nil {
		return nil, fmt.Errorf("%w: age file without a tlock stanza (not time-locked)", ErrMalformed)
	}
	h.raw = raw
	return h, nil
}

// Info is what Inspect reports about a sealed file, without decrypting it.
// Nothing in it is authenticated until the file is opened.
type Info struct {
	// Format is FormatTlock or FormatKura.
	Format string `json:"format"`
	// ChainHash is the chain the file is locked to.
	ChainHash string `json:"chain_hash"`
	// Round is the release round.
	Round uint64 `json:"round"`
	// ReleaseTime is when Round is published; zero when the chain's
	// schedule is not known offline (a tlock file for a chain other than
	// quicknet).
	ReleaseTime time.Time `json:"release_time,omitzero"`
	// Recipients are the fingerprints of the party cards the file is
	// sealed to (FormatKura only).
	Recipients []string `json:"recipients,omitempty"`
	// HeaderSize is the size of the header in bytes (after de-armoring).
	HeaderSize int `json:"header_size"`
}

func (e *envelope) info() *Info {
	in := &Info{Format: FormatKura, ChainHash: hex.EncodeToString(e.chainHash[:]), Round: e.round, HeaderSize: len(e.raw)}
	ci := &ChainInfo{Period: time.Duration(e.period) * time.Second, Genesis: time.Unix(e.genesis, 0)}
	if t, err := ci.TimeOf(e.round); err == nil {
		in.ReleaseTime = t
	}
	for _, w := range e.recipients {
		in.Recipients = append(in.Recipients, hex.EncodeToString(w.fingerprint[:]))
	}
	return in
}

func (h *tlockHeader) info() *Info {
	in := &Info{Format: FormatTlock, ChainHash: h.chainHash, Round: h.round, HeaderSize: len(h.raw)}
	if ci := knownChain(h.chainHash); ci != nil {
		if t, err := ci.TimeOf(h.round); err == nil {
			in.ReleaseTime = t
		}
	}
	return in
}
