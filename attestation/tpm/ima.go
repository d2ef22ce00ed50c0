package tpm

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/attestation"
)

// Limits on an IMA measurement list beyond its size.
const (
	maxIMALine     = 8 << 10
	maxIMAEntries  = 65536
	imaNameLenMax  = 255 // IMA_EVENT_NAME_LEN_MAX, for the legacy "ima" template
	imaDefaultPCR  = 10  // CONFIG_IMA_MEASURE_PCR_IDX
	maxIMAFileName = 4096
)

// imaEntry is one line of the ASCII IMA runtime measurement list,
// "PCR template-hash template-name filedata-hash filename [signature]",
// whose template hash kura recomputed from the other fields.
type imaEntry struct {
	pcr          int
	templateHash []byte
	template     string
	fileAlg      string // "sha256", "sha1", ...
	fileHash     []byte
	fileName     string
	sig          []byte
}

// imaList is a parsed IMA list. All its template hashes use one algorithm,
// that of its bank (ascii_runtime_measurements is SHA-1, the _sha256 file
// SHA-256, and so on).
type imaList struct {
	bank    uint16 // TPM algorithm id
	entries []imaEntry
}

// imaFileAlgs are the file hash algorithms an ima-ng entry may name.
var imaFileAlgs = map[string]int{"md5": 16, "sha1": 20, "sha224": 28, "sha256": 32, "sha384": 48, "sha512": 64, "sm3": 32}

// parseIMAList parses the ASCII IMA runtime measurement list. Templates
// ima, ima-ng and ima-sig are supported: for each line the template data is
// rebuilt from the file hash and name (and signature) and must hash to the
// line's template hash, so the file names and digests reported are those
// the PCR replay covers. Other templates are refused.
func parseIMAList(data []byte) (*imaList, error) {
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: ima list line %d: %s", attestation.ErrMalformed, line, fmt.Sprintf(format, args...))
	}
	if len(data) > attestation.MaxEventLogSize {
		return nil, fmt.Errorf("%w: ima list is %d bytes, limit is %d", attestation.ErrMalformed, len(data), attestation.MaxEventLogSize)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, fmt.Errorf("%w: ima list is empty or does not end with a newline", attestation.ErrMalformed)
	}
	l := &imaList{}
	for i, line := range strings.Split(string(data[:len(data)-1]), "\n") {
		n := i + 1
		if n > maxIMAEntries {
			return nil, bad(n, "more than %d entries", maxIMAEntries)
		}
		if len(line) > maxIMALine {
			return nil, bad(n, "%d bytes, limit is %d", len(line), maxIMALine)
		}
		f := strings.SplitN(line, " ", 5)
		if len(f) != 5 {
			return nil, bad(n, "want PCR, template hash, template name, file hash and file name separated by spaces")
		}
		pcr, err := strconv.Atoi(f[0])
		if err != nil || pcr < 0 || pcr >= numPCRs || strconv.Itoa(pcr) != f[0] {
			return nil, bad(n, "PCR %q, want 0 to %d", f[0], numPCRs-1)
		}
		th, err := lowerHex(f[1])
		if err != nil {
			return nil, bad(n, "template hash is not hex")
		}
		var bank uint16
		for alg, b := range banks {
			if b.Hash.Size() == len(th) {
				bank = alg
			}
		}
		if bank == 0 {
			return nil, bad(n, "template hash of %d bytes: not SHA-1, SHA-256, SHA-384 or SHA-512", len(th))
		}
		if l.bank == 0 {
			l.bank = bank
		} else if l.bank != bank {
			return nil, bad(n, "template hash of %d bytes where earlier lines had %d", len(th), banks[l.bank].Hash.Size())
		}
		e := imaEntry{pcr: pcr, templateHash: th, template: f[2]}
		if err := e.parseFields(f[3], f[4], banks[bank].Hash); err != nil {
			return nil, bad(n, "%v", err)
		}
		l.entries = append(l.entries, e)
	}
	return l, nil
}

// parseFields reads the file hash, file name and signature of a line and
// checks that they hash to the template hash under h.
func (e *imaEntry) parseFields(fileHash, rest string, h crypto.Hash) error {
	violation := allZero(e.templateHash)
	switch e.template {
	case "ima":
		d, err := lowerHex(fileHash)
		if err != nil || len(d) != 20 {
			return fmt.Errorf("template ima: file hash is not 40 hex digits")
		}
		e.fileAlg, e.fileHash, e.fileName = "sha1", d, rest
		if len(rest) > imaNameLenMax {
			return fmt.Errorf("template ima: file name of %d bytes, limit is %d", len(rest), imaNameLenMax)
		}
		name := make([]byte, imaNameLenMax+1)
		copy(name, rest)
		return e.checkTemplateHash(h, violation, d, name)
	case "ima-ng", "ima-sig":
		alg, hx, ok := strings.Cut(fileHash, ":")
		size, known := imaFileAlgs[alg]
		d, err := lowerHex(hx)
		if !ok || !known || err != nil || len(d) != size {
			return fmt.Errorf("template %s: file hash %q is not ALG:HEX of a known algorithm", e.template, fileHash)
		}
		e.fileAlg, e.fileHash = alg, d
		if len(rest) > maxIMAFileName {
			return fmt.Errorf("file name of %d bytes, limit is %d", len(rest), maxIMAFileName)
		}
		dng := append(append([]byte(alg), ':', 0), d...)
		try := func(name string, sig []byte) bool {
			fields := [][]byte{dng, append([]byte(name), 0)}
			if e.template == "ima-sig" {
				fields = append(fields, sig)
			}
			if e.checkTemplateHash(h, violation, fields...) != nil {
				return false
			}
			e.fileName, e.sig = name, sig
			return true
		}
		if try(rest, nil) {
			return nil
		}
		// ima-sig with a signature: the last space-separated field.
		if i := strings.LastIndexByte(rest, ' '); e.template == "ima-sig" && i > 0 {
			if sig, err := lowerHex(rest[i+1:]); err == nil && len(sig) > 0 && try(rest[:i], sig) {
				return nil
			}
		}
		return fmt.Errorf("the template hash is not the %s of the template data the line gives (file hash, file name%s)", h, map[bool]string{true: ", signature"}[e.template == "ima-sig"])
	}
	return fmt.Errorf("template %q: only ima, ima-ng and ima-sig can be checked", e.template)
}

// checkTemplateHash compares the template hash with h over the template
// data: for "ima" the fields as they are, for the others each field
// prefixed with its 32-bit little-endian length. A violation entry (all
// zeros) has no template data to check; IMA extends it as all ones.
func (e *imaEntry) checkTemplateHash(h crypto.Hash, violation bool, fields ...[]byte) error {
	if violation {
		return nil
	}
	w := h.New()
	for _, f := range fields {
		if e.template != "ima" {
			w.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(f))))
		}
		w.Write(f)
	}
	if !bytes.Equal(w.Sum(nil), e.templateHash) {
		return fmt.Errorf("template hash mismatch")
	}
	return nil
}

// extendValue is what IMA extends into the PCR for the entry.
func (e *imaEntry) extendValue() []byte {
	if allZero(e.templateHash) {
		return bytes.Repeat([]byte{0xff}, len(e.templateHash))
	}
	return e.templateHash
}

// claim renders the entry for the claims (docs/spec/attestation.md §5).
func (e *imaEntry) claim(bank string) map[string]any {
	c := map[string]any{
		"source": "ima", "pcr": e.pcr, "type": e.template,
		"digests":       map[string]any{e.fileAlg: hex.EncodeToString(e.fileHash)},
		"template_hash": map[string]any{bank: hex.EncodeToString(e.templateHash)},
		"description":   e.fileName,
		"data_verified": !allZero(e.templateHash),
	}
	if allZero(e.templateHash) {
		c["violation"] = true
	}
	return c
}

// marshal encodes the list; for a parsed list it gives the input back.
func (l *imaList) marshal() []byte {
	var b strings.Builder
	for _, e := range l.entries {
		fh := e.fileAlg + ":" + hex.EncodeToString(e.fileHash)
		if e.template == "ima" {
			fh = hex.EncodeToString(e.fileHash)
		}
		fmt.Fprintf(&b, "%d %s %s %s %s", e.pcr, hex.EncodeToString(e.templateHash), e.template, fh, e.fileName)
		if e.sig != nil {
			b.WriteString(" " + hex.EncodeToString(e.sig))
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// lowerHex decodes lower-case hex, as the kernel writes it: upper case
// would give a second spelling of one list.
func lowerHex(s string) ([]byte, error) {
	if strings.ToLower(s) != s {
		return nil, fmt.Errorf("upper-case hex")
	}
	return hex.DecodeString(s)
}
