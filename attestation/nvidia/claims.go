package nvidia

import (
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"maps"
	"strconv"

	"github.com/kura-cc/kura/attestation"
)

// claims returns what a verified report says, as the appraisal policy
// reads it. Byte strings are lower-case hex.
//
// There is no cc_mode (nor devtools) claim: a Hopper report does not carry
// the GPU's confidential-computing mode. nvtrust's verifier and NVIDIA's
// attestation SDK read it from NVML (nvmlSystemGetConfComputeState:
// ccFeature, devToolsMode) outside the signed report, and NVIDIA's
// "secboot"/"dbgstat" claims only restate that every measurement matched
// NVIDIA's reference values. feature_flag, when a newer driver sends it,
// is the multi-GPU mode (SPT, MPT, PPCIE), not the CC mode.
func claims(r *Report, leaf *x509.Certificate, fwid []byte) map[string]any {
	measurements := make(map[string]any, len(r.Blocks))
	for _, b := range r.Blocks {
		measurements[strconv.Itoa(int(b.Index))] = hex.EncodeToString(b.Value)
	}
	device := map[string]any{
		"subject": leaf.Subject.String(),
		"issuer":  leaf.Issuer.String(),
		"serial":  hex.EncodeToString(leaf.SerialNumber.Bytes()),
		// ueid is the serial in decimal, as NVIDIA's claims give it.
		"ueid": leaf.SerialNumber.String(),
	}
	if fwid != nil {
		device["fwid"] = hex.EncodeToString(fwid)
	}
	reportData := reportData(r)
	c := map[string]any{
		"tee":                string(attestation.NVIDIA),
		"measurement":        measurementDigest(r),
		"insecure":           false,
		"nonce":              hex.EncodeToString(r.Nonce[:]),
		"report_data":        hex.EncodeToString(reportData[:]),
		"responder_nonce":    hex.EncodeToString(r.ResponderNonce[:]),
		"spdm_version":       "1.1",
		"measurements":       measurements,
		"device_certificate": device,
	}
	// The opaque fields by name (driver_version, vbios_version, project,
	// …; opaque_unknown for ids NVIDIA's verifiers do not know). None of
	// their names is one of the keys above.
	maps.Copy(c, opaqueClaims(r.Opaque))
	return c
}

// reportData is the requester's nonce, zero-padded to the report_data
// size kura uses for every TEE.
func reportData(r *Report) [attestation.ReportDataSize]byte {
	var d [attestation.ReportDataSize]byte
	copy(d[:], r.Nonce[:])
	return d
}

// measurementDigest is the claims' "measurement": SHA-384 over every
// measurement block in report order, each as index, DMTF value type, a
// big-endian 16-bit length and the value (docs/spec/attestation.md §4.7).
// A policy can pin a GPU's whole firmware and driver state with one
// reference measurement, or judge indexes one by one.
func measurementDigest(r *Report) string {
	h := sha512.New384()
	for _, b := range r.Blocks {
		h.Write([]byte{b.Index, b.ValueType, byte(len(b.Value) >> 8), byte(len(b.Value))})
		h.Write(b.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}
