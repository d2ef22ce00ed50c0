package captures

// Azure confidential VM evidence from Trustee's verifier tests, embedded
// with the rest of trustee/ by trusteeFiles (see PROVENANCE.md). Unlike the
// azure/ captures, each is one VM's complete evidence: the HCL report, the
// TPM quote its attestation key signed with the quoted PCR values, and the
// VCEK or TD quote; each verifies end to end.

// TrusteeAzSNPEvidence returns the az-snp-vtpm evidence of an Azure SEV-SNP
// confidential VM on AMD Milan, as guest-components' attester serialises it
// (version 2: the quote's signature, TPMS_ATTEST and 24 SHA-256 PCRs in
// hex, the HCL report and the VCEK, valid 2025-01-28 to 2032-01-28, in
// URL-safe base64).
func TrusteeAzSNPEvidence() []byte {
	return readTrustee("azure/az-snp-vtpm/evidence-v2.json")
}

// TrusteeAzSNPGenoaEvidence returns the az-snp-vtpm evidence of an Azure
// SEV-SNP confidential VM on AMD Genoa, in the attester's older form
// without a version (the "quote" and "report" members as JSON arrays of
// bytes, "vcek" as PEM), and vcekPEM, Trustee's copy of that VCEK (valid
// 2025-01-24 to 2032-01-24), equal to the evidence's.
func TrusteeAzSNPGenoaEvidence() (evidence, vcekPEM []byte) {
	return readTrustee("azure/az-snp-vtpm/evidence-genoa.json"), readTrustee("azure/az-snp-vtpm/vcek-genoa.pem")
}

// TrusteeAzTDXEvidence returns the az-tdx-vtpm evidence of an Azure TDX
// confidential VM (version 1: the TPM quote in hex, the HCL report and a
// TD quote v4 whose PCK chain, FMSPC 00806f050000, is valid 2023-09-13 to
// 2030-09-13, in URL-safe base64). No TCB info or QE identity for that
// FMSPC is captured.
func TrusteeAzTDXEvidence() []byte {
	return readTrustee("azure/az-tdx-vtpm/evidence-v1.json")
}

// readTrustee returns a fresh copy of an embedded Trustee file.
func readTrustee(name string) []byte {
	b, err := trusteeFiles.ReadFile("trustee/" + name)
	if err != nil {
		panic(err)
	}
	return b
}
