// Package nvidia verifies NVIDIA Hopper (H100, H200) GPU attestation
// reports offline, with the standard library only.
//
// A report is what the GPU driver returns for a 32-byte nonce (NVML
// nvmlDeviceGetConfComputeGpuAttestationReport): an SPDM 1.1 (DMTF
// DSP0274) GET_MEASUREMENTS request carrying the nonce, then the GPU's
// MEASUREMENTS response: measurement blocks in the DMTF measurement
// format (SHA-384 digests of firmware, VBIOS and driver state, by index),
// the responder's nonce, NVIDIA's opaque data (driver and VBIOS versions,
// project, SKUs, FWID, measurement counts and other fields, as id, size,
// value) and an ECDSA P-384 signature over the SHA-384 of the request and
// the response up to the signature (SPDM 1.1's L1/L2 transcript, as
// nvtrust's local verifier checks it). The GPU sends a certificate chain
// with it (PEM, leaf first): its attestation key's certificate (GSP FMC),
// the GSP BROM's, NVIDIA's provisioning CAs and the NVIDIA Device Identity
// CA.
//
// ParseReport decodes a report and checks its structure, with no
// cryptography. Verifier.VerifyReport then verifies the chain up to
// NVIDIA's Device Identity CA (embedded: DeviceRoot) or configured roots
// (LoadRoots), the report's signature with the leaf's key, that the
// request's nonce is the one the caller chose, and that the report's FWID,
// when it carries one, is the FWID in the leaf certificate's TCG DICE
// extension (as nvtrust does). Verifier.Verify does the same for an
// nvidia bundle (the report as evidence, the chain as certs) and leaves
// the nonce to the caller as report data, the first 32 of kura's 64
// bytes. Its claims are "tee" ("nvidia"), "measurement" (SHA-384 over
// every measurement block), "nonce", "report_data" (the nonce zero-padded
// to 64 bytes), "responder_nonce", "measurements" (decimal index → hex value),
// each opaque field by name ("driver_version", "vbios_version",
// "project", "project_sku", "chip_sku", "nvdec0_status",
// "measurement_count", "fwid", …; unknown field ids under
// "opaque_unknown" as hex) and "device_certificate" (the leaf's subject,
// issuer, serial in hex and as NVIDIA's decimal "ueid", and its FWID).
// The appraisal policy judges the measurements against reference values
// (nvidia.measurements: index → allowed values). NVIDIA's RIM files (the
// signed SWID tags of golden measurements for each driver and VBIOS) are
// not read yet: their values must be copied into reference values by hand.
//
// Package attestation/nvidia/live collects reports live, through NVML.
//
// # Security model
//
// Everything in a report is untrusted until verified; the only trust
// anchors are the roots in Config, which should be NVIDIA's Device
// Identity CA. A report that passes VerifyReport was signed by a key that
// NVIDIA's CA hierarchy certified as a GH100 GSP's attestation key (the
// chain is checked for validity at Config.Now, and certificates may
// outlive a compromise: revocation is not checked, since NVIDIA publishes
// it only by OCSP, which offline verification cannot reach), in answer to
// the caller's nonce, so it is fresh if the nonce was; and its
// measurements and opaque fields are the ones that GPU reported.
//
// It does not establish:
//   - that the GPU is in confidential-computing mode, nor that devtools
//     mode is off. The report carries no such field: nvtrust and NVIDIA's
//     attestation SDK read the CC and devtools state from NVML, outside
//     the signed report, and NVIDIA's own "secboot"/"dbgstat" claims only
//     restate that every measurement matched NVIDIA's golden values. So
//     there is no cc_mode claim; a policy wanting CC on must rely on
//     reference values for the measurements (which differ with the
//     firmware and driver the GPU runs) and on whatever the CPU TEE
//     attests about the driver that enabled the GPU.
//   - that the measurements are good ones: that is the appraisal's
//     reference values' business, and they check only the indexes they
//     list;
//   - that the GPU is attached to the attested CPU TEE: the nonce binds
//     the report to whoever chose it, so the caller must derive the nonce
//     from its CPU evidence (or its session) to bind the two;
//   - that the device certificate is not revoked (see above);
//   - anything about GPUs other than Hopper: Blackwell reports differ.
package nvidia
