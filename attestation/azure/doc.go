// Package azure verifies the evidence of Azure confidential VMs attested
// through their virtual TPM: az-snp-vtpm on AMD SEV-SNP and az-tdx-vtpm on
// Intel TDX, the names Trustee and Confidential Containers use
// (docs/spec/attestation.md §4.5).
//
// On these VMs the guest OS does not hold the hardware report. Azure's
// paravisor (the HCL) asks the hardware for a report whose report_data is
// the SHA-256 of a JSON document, the runtime data, that names the vTPM's
// attestation key (AK, kid "HCLAkPub") and the VM configuration, and writes
// report and runtime data to the vTPM's NV index 0x01400001: the HCL
// report. The guest then asks the vTPM for a TPM2_Quote over its PCRs,
// signed by the AK, with the verifier's nonce, or kura's report_data, as
// qualifying data (extraData).
//
// A Verifier checks, recording each step: the HCL report parses strictly
// ("hcl report parse"); the hardware report verifies up to the vendor root
// (SNP: attestation/snp's checks on the SNP report and the VCEK in the
// bundle's Certs, prefixed "snp ", then "snp vmpl": the report was
// requested at VMPL 0, by the HCL; TDX: the TD quote in VTPM.TDQuote
// through attestation/tdx with the bundle's Collateral, prefixed "tdx ",
// then "td report vs quote": the quote is over the HCL report's TD
// report); its report_data begins with the hash of the runtime data and is
// zero after it ("runtime data"); the runtime data's AK is an RSA key
// ("attestation key"); the TPM quote parses ("tpm quote parse") and its
// signature verifies with the AK ("tpm quote signature"); the PCR values in
// the bundle hash to the quote's pcrDigest ("pcr digest"). The result's
// report_data is the quote's extraData, zero-padded to 64 bytes, which the
// verifier service compares with the bundle's runtime data or nonce like
// any TEE's report_data.
//
// Attester produces such evidence on an Azure confidential VM: it asks the
// paravisor for a fresh HCL report (writing report_data to NV index
// 0x01400002), quotes with the attestation key at 0x81000003, and fetches
// the TD quote (TDX) or the VCEK (SNP) from Azure's instance metadata
// service.
//
// Security model: the bundle is untrusted; trust flows from AMD's or
// Intel's roots (through the snp and tdx verifiers) to the hardware report,
// through its report_data to the runtime data and the AK, and through the
// AK's signature to the quote and the PCR values. What this establishes: a
// paravisor with the SNP launch measurement (or TD measurements) in the
// claims, on genuine hardware, vouches for the AK; the vTPM holding that
// key signed these PCR values and this extraData. What it does not: the
// hardware measurement covers Azure's paravisor firmware, not the guest OS,
// whose boot chain only the PCRs describe (the appraisal policy must judge
// them); kura trusts Azure's paravisor to keep the AK inside the vTPM and to
// measure the guest honestly, as every Azure vTPM verifier does; the TPM
// quote's qualifiedSigner (the AK's TPM name) is not compared with the
// runtime data's AK, which carries no TPM object attributes to compute it
// from; the runtime data's other members (the endorsement key, the VM
// configuration) are reported as claims, not judged. On TDX a TD report
// alone proves nothing (its MAC is checkable only on the platform that
// made it): without a TD quote verification fails, and kura does not check
// that the TD report came from the paravisor rather than other code in the
// TD, which on Azure runs the guest OS as a partitioned L2 VM. Parsers bound
// sizes and never panic on input.
package azure
