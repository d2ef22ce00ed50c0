package tpm

import (
	"crypto"
	"encoding/binary"
)

// specIDHeader returns the Spec ID event of a log with algs' banks.
func specIDHeader(algs ...uint16) []byte {
	spec := []byte(specIDSignature)
	spec = binary.LittleEndian.AppendUint32(spec, 0) // platformClass: client
	spec = append(spec, 0, 2, 0, 2)                  // spec 2.0, errata 0, uintnSize 2 (UINT64)
	spec = binary.LittleEndian.AppendUint32(spec, uint32(len(algs)))
	for _, a := range algs {
		spec = binary.LittleEndian.AppendUint16(spec, a)
		spec = binary.LittleEndian.AppendUint16(spec, uint16(banks[a].hash.Size()))
	}
	spec = append(spec, 0) // no vendor info
	h := binary.LittleEndian.AppendUint32(nil, 0)
	h = binary.LittleEndian.AppendUint32(h, evNoAction)
	h = append(h, make([]byte, 20)...)
	h = binary.LittleEndian.AppendUint32(h, uint32(len(spec)))
	return append(h, spec...)
}

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
