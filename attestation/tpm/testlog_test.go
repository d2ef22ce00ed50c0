package tpm

import (
	"crypto"
	"encoding/binary"

	"github.com/kura-cc/kura/attestation/internal/tcglog"
)

// specIDHeader returns the Spec ID event of a log with algs' banks.
func specIDHeader(algs ...uint16) []byte { return tcglog.SpecIDHeader(algs...) }

// imaNGEntry returns the ima-ng entry the kernel writes for a file, with
// its template hash under h.
func imaNGEntry(h crypto.Hash, fileAlg string, fileHash []byte, name string) imaEntry {
	e := imaEntry{pcr: imaDefaultPCR, template: "ima-ng", fileAlg: fileAlg, fileHash: fileHash, fileName: name}
	w := h.New()
	for _, f := range [][]byte{append(append([]byte(fileAlg), ':', 0), fileHash...), append([]byte(name), 0)} {
		w.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(f))))
		w.Write(f)
	}
	e.templateHash = w.Sum(nil)
	return e
}
