// Package snp verifies AMD SEV-SNP attestation reports and produces them
// inside SNP guests.
//
// The Verifier parses the 1184-byte attestation report, checks its ECDSA
// P-384 signature with the VCEK or VLEK certificate, checks that certificate
// up to AMD's root key (ARK) for the report's product line (Milan, Genoa,
// Turin), checks the vendor consistency rules between the report and the
// certificate (reported TCB equals the certificate's TCB, CHIP_ID equals its
// HWID), optionally checks AMD's revocation list, and returns the report's
// fields as claims (docs/spec/attestation.md §5). It does not judge the
// claims: measurement, host data, minimum TCB, debug and VMPL are the
// appraisal policy's business. The Attester asks the guest's configfs-tsm
// report interface, or /dev/sev-guest, for a report binding caller data.
//
// Security model: everything in a Bundle is untrusted. The only trust anchors
// are AMD's root certificates embedded in github.com/google/go-sev-guest
// (verify/trust); an ARK shipped with the evidence is accepted only if it is
// byte-for-byte one of them, and an ASK or ASVK shipped with the evidence only
// if the trusted ARK signed it. Certificates missing from the evidence are
// fetched through the configured attestation.Getter from the AMD KDS URLs; the
// Getter is not trusted either, since everything it returns must chain to an
// embedded root. The embedded ASKs and ASVKs are checked against their ARK
// when the Verifier is made. Certificate validity is judged at Config.Now.
//
// Each chain is verified once, by the Verifier itself: the checks
// go-sev-guest's verify.SnpAttestation makes of the VCEK or VLEK (AMD's KDS
// certificate profile, crypto/x509's path rules, the signature by the
// intermediate) are made in verifyChain, and only the report signature is
// left to go-sev-guest (verify.SnpReportSignature). Verified chains are
// cached per Verifier (at most 1024), keyed by the SHA-256 of the signer
// kind, the report's product line, the certificate bytes exactly as the
// bundle gives them and any endorsement key fetched through the Getter. A
// cache hit needs the same roots and a verification time inside every
// certificate's validity, and still checks the report signature, the vendor
// rules and, when asked, revocation.
// The binding of report_data to a nonce and runtime data is the caller's
// check (package attestation).
package snp
