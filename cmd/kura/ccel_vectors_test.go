package main

import (
	"crypto/sha512"
	"encoding/binary"
)

// ccelVectors returns CCEL event logs for the SPR E4 capture, whose RTMRs
// no log built here can give: tdx-ccel-empty.bin (the Spec ID event only,
// SHA-384: replays to zero RTMRs) and tdx-ccel-kernel.bin (one event on
// RTMR1, padded to a log area with 0xFF as TDVF leaves it).
func ccelVectors() map[string][]byte {
	spec := []byte("Spec ID Event03\x00")
	spec = binary.LittleEndian.AppendUint32(spec, 0) // platformClass
	spec = append(spec, 0, 2, 0, 2)                  // spec 2.0, errata 0, uintnSize 2
	spec = binary.LittleEndian.AppendUint32(spec, 1) // one algorithm
	spec = binary.LittleEndian.AppendUint16(spec, 0x000C)
	spec = binary.LittleEndian.AppendUint16(spec, 48)  // SHA-384
	spec = append(spec, 0)                             // no vendor info
	empty := binary.LittleEndian.AppendUint32(nil, 0)  // MR index 0
	empty = binary.LittleEndian.AppendUint32(empty, 3) // EV_NO_ACTION
	empty = append(empty, make([]byte, 20)...)
	empty = binary.LittleEndian.AppendUint32(empty, uint32(len(spec)))
	empty = append(empty, spec...)

	data := []byte("Linux kernel")
	d := sha512.Sum384(data)
	kernel := append([]byte(nil), empty...)
	kernel = binary.LittleEndian.AppendUint32(kernel, 2)          // MR index 2: RTMR1
	kernel = binary.LittleEndian.AppendUint32(kernel, 0x80000003) // EV_EFI_BOOT_SERVICES_APPLICATION
	kernel = binary.LittleEndian.AppendUint32(kernel, 1)
	kernel = binary.LittleEndian.AppendUint16(kernel, 0x000C)
	kernel = append(kernel, d[:]...)
	kernel = binary.LittleEndian.AppendUint32(kernel, uint32(len(data)))
	kernel = append(kernel, data...)
	for range 256 {
		kernel = append(kernel, 0xff)
	}
	return map[string][]byte{"tdx-ccel-empty.bin": empty, "tdx-ccel-kernel.bin": kernel}
}
