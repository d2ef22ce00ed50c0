package captures

import "embed"

// trusteeFiles holds evidence from Trustee's verifier tests (see
// PROVENANCE.md).
//
//go:embed trustee
var trusteeFiles embed.FS

// TrusteeTPMEvidence returns Trustee's TPM test evidence: the JSON that
// guest-components' TPM attester sends (ak_public as PKIX DER, a quote of
// SHA-256 PCRs 0 to 23 with 64 bytes of qualifying data, the PCR values;
// no report_data member), from a software TPM.
func TrusteeTPMEvidence() []byte {
	b, err := trusteeFiles.ReadFile("trustee/tpm_evidence.json")
	if err != nil {
		panic(err)
	}
	return b
}
