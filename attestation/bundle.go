package attestation

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
)

// TEE names a kind of trusted execution environment.
type TEE string

// The TEE types kura understands.
const (
	SNP TEE = "snp" // AMD SEV-SNP
	TDX TEE = "tdx" // Intel TDX
	Sim TEE = "sim" // simulated, INSECURE, for development only
	CCA TEE = "cca" // Arm CCA realm (platform and realm tokens)
	// Azure confidential VMs attested through their virtual TPM: an HCL
	// report (a hardware report binding the vTPM's attestation key) and a
	// TPM quote (VTPM). The names are those Trustee and CoCo use.
	AzSNPvTPM TEE = "az-snp-vtpm" // on AMD SEV-SNP
	AzTDXvTPM TEE = "az-tdx-vtpm" // on Intel TDX
	// TPM is a plain TPM 2.0 quote by an attestation key the verifier is
	// configured with (docs/spec/attestation.md §4.6). It attests measured
	// boot and runtime integrity, not memory isolation.
	TPM TEE = "tpm"
	// NVIDIA is an NVIDIA GPU's SPDM attestation report (Hopper), signed
	// by the GPU's device key under NVIDIA's device root; usually a
	// device (gpu0) of a composite bundle.
	NVIDIA TEE = "nvidia"
)

// ReportDataSize returns how many bytes of report data t's evidence signs:
// 32 for nvidia (the SPDM requester nonce), ReportDataSize for the rest.
// Kura's binding puts the first that many bytes of its report_data there.
func (t TEE) ReportDataSize() int {
	if t == NVIDIA {
		return 32
	}
	return ReportDataSize
}

// MinQuoteReportData is the shortest prefix of report_data a tpm quote's
// qualifying data may hold: what a TPM with SHA-256 alone takes (a TPM
// takes at most 2 bytes beyond its largest digest).
const MinQuoteReportData = 32

// Holds reports whether reportData, as a verifier of t returns it
// (zero-padded to ReportDataSize), holds want (docs/spec/attestation.md
// §3): the first t.ReportDataSize() bytes of it, then zeros; for tpm, any
// prefix of want of at least MinQuoteReportData bytes, then zeros. Finding
// other runtime data whose value shares a 32-byte prefix is as hard as
// breaking SHA-512/256. The comparison is constant time over the bytes
// compared.
func (t TEE) Holds(reportData []byte, want [ReportDataSize]byte) bool {
	n := t.ReportDataSize()
	if len(reportData) != ReportDataSize {
		return false
	}
	if t == TPM {
		n = MinQuoteReportData
		for n < ReportDataSize && reportData[n] == want[n] {
			n++
		}
	}
	if subtle.ConstantTimeCompare(reportData[:n], want[:n]) != 1 {
		return false
	}
	for _, c := range reportData[n:] {
		if c != 0 {
			return false
		}
	}
	return true
}

// BundleVersion is the only evidence bundle version this package accepts.
const BundleVersion = 1

// MaxBundleSize bounds an encoded bundle. Real bundles are a few KiB to a
// few tens of KiB (a TDX quote with collateral is the largest).
const MaxBundleSize = 1 << 20

// Bundle is the evidence bundle (docs/spec/attestation.md §2): hardware
// evidence, the certificates and collateral that came with it, and the
// runtime data whose hash is bound into the hardware report_data.
// []byte fields are standard base64 in JSON.
type Bundle struct {
	Version int `json:"version"`
	TEE     TEE `json:"tee"`
	// Evidence is the raw hardware evidence: the 1184-byte SNP report, the
	// TDX quote (v4 or v5), the sim evidence document, the CCA token, or
	// for the Azure vTPM TEEs the HCL report read from the vTPM's NV index
	// 0x01400001, for tpm the attestation key's public area.
	Evidence []byte `json:"evidence"`
	// Certs carries certificates that came with the evidence. For SNP it is
	// the GUID-keyed certificate table of an extended report or of the
	// configfs-tsm auxblob, or a PEM bundle (VCEK/VLEK, ASK/ASVK, ARK).
	Certs []byte `json:"certs,omitempty"`
	// Collateral carries TDX collateral from Intel PCS, when the attester
	// had it. Verifiers may also find collateral in caches or fetch it.
	Collateral *Collateral `json:"collateral,omitempty"`
	// RuntimeData is what the attester bound into report_data.
	RuntimeData RuntimeData `json:"runtime_data"`
	// Binding names the rule that binds RuntimeData into report_data:
	// empty for kura's rule, or a Confidential Containers rule for
	// evidence from CoCo attesters (docs/spec/attestation.md §3).
	Binding Binding `json:"binding,omitempty"`
	// VTPM carries the TPM quote (and for az-tdx-vtpm the TD quote) of the
	// Azure vTPM TEEs and of tpm (with, for tpm, its event logs); it is
	// present for them and absent for every other.
	VTPM *VTPM `json:"vtpm,omitempty"`
	// EventLog is, for tdx only, the TD's CCEL event log (the log area of
	// the ACPI CCEL table, /sys/firmware/acpi/tables/data/CCEL), whose
	// replay must give the quote's RTMRs (docs/spec/attestation.md §4.2).
	// Absent, the RTMRs are reported as quoted and not explained.
	EventLog []byte `json:"event_log,omitempty"`
}

// Collateral is Intel PCS collateral for a TDX quote: response bodies as
// Intel PCS serves them and the issuer chains PCS sends in headers.
type Collateral struct {
	TCBInfo               []byte `json:"tcb_info,omitempty"`                 // JSON body of /tdx/certification/v4/tcb
	TCBInfoIssuerChain    []byte `json:"tcb_info_issuer_chain,omitempty"`    // PEM, TCB-Info-Issuer-Chain header
	QEIdentity            []byte `json:"qe_identity,omitempty"`              // JSON body of /tdx/certification/v4/qe/identity
	QEIdentityIssuerChain []byte `json:"qe_identity_issuer_chain,omitempty"` // PEM, SGX-Enclave-Identity-Issuer-Chain header
	PCKCRL                []byte `json:"pck_crl,omitempty"`                  // DER
	PCKCRLIssuerChain     []byte `json:"pck_crl_issuer_chain,omitempty"`     // PEM, SGX-PCK-CRL-Issuer-Chain header
	RootCACRL             []byte `json:"root_ca_crl,omitempty"`              // DER
}

// ParseBundle decodes and sanity-checks an encoded bundle. It checks shape
// only; nothing in the bundle is verified.
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("%w: bundle is %d bytes, limit is %d", ErrMalformed, len(data), MaxBundleSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: bundle: trailing data after the JSON object", ErrMalformed)
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return &b, nil
}

// Check reports whether the bundle is well formed.
func (b *Bundle) Check() error {
	if b.Version != BundleVersion {
		return fmt.Errorf("%w: bundle version %d, want %d", ErrMalformed, b.Version, BundleVersion)
	}
	switch b.TEE {
	case SNP, TDX, Sim, CCA, AzSNPvTPM, AzTDXvTPM, TPM, NVIDIA:
	default:
		return fmt.Errorf("%w: unknown tee %q (want snp, tdx, sim, cca, az-snp-vtpm, az-tdx-vtpm, tpm or nvidia)", ErrMalformed, b.TEE)
	}
	if len(b.Evidence) == 0 {
		return fmt.Errorf("%w: bundle has no evidence", ErrMalformed)
	}
	if err := b.checkVTPM(); err != nil {
		return err
	}
	switch {
	case len(b.EventLog) > 0 && b.TEE != TDX:
		return fmt.Errorf("%w: event_log belongs to %s bundles only (a %s bundle's boot log goes in vtpm.event_log)", ErrMalformed, TDX, TPM)
	case len(b.EventLog) > MaxEventLogSize:
		return fmt.Errorf("%w: event_log is %d bytes, limit is %d", ErrMalformed, len(b.EventLog), MaxEventLogSize)
	}
	if err := b.Binding.Check(); err != nil {
		return err
	}
	return b.RuntimeData.checkFor(b.Binding)
}

// Marshal encodes the bundle as indented JSON.
func (b *Bundle) Marshal() ([]byte, error) {
	return json.MarshalIndent(b, "", "  ")
}
