package captures

import (
	"embed"
	"encoding/hex"
)

// nvidiaFiles holds the NVIDIA Hopper GPU attestation report and its
// certificates (see PROVENANCE.md).
//
//go:embed nvidia
var nvidiaFiles embed.FS

// nvidiaHopperNonce is the nonce the Hopper report answers.
const nvidiaHopperNonce = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb"

// NVIDIAHopper returns nvtrust's sample H100 attestation report (raw
// bytes: an SPDM 1.1 GET_MEASUREMENTS request and the signed MEASUREMENTS
// response, 64 measurement blocks, driver 550.90.07, VBIOS
// 96.00.9f.00.01), the device certificate chain that goes with it (PEM,
// leaf first, five certificates ending with NVIDIA's root), NVIDIA's
// Device Identity CA (PEM) and the 32-byte nonce the report answers. The
// certificates are valid from 2022-03-01 (the latest notBefore) to 9999;
// kura verifies the report as of 2024-07-01.
func NVIDIAHopper() (report, chainPEM, rootPEM, nonce []byte) {
	n, err := hex.DecodeString(nvidiaHopperNonce)
	if err != nil {
		panic(err)
	}
	return readNVIDIA("hopper-report.bin"), readNVIDIA("hopper-cert-chain.pem"), readNVIDIA("nvidia-device-root.pem"), n
}

// readNVIDIA returns a fresh copy of an embedded NVIDIA file. The names
// are constants here, checked by this package's test.
func readNVIDIA(name string) []byte {
	b, err := nvidiaFiles.ReadFile("nvidia/" + name)
	if err != nil {
		panic(err)
	}
	return b
}
