package captures

import "embed"

// ccaFiles holds the Arm CCA token and its CoMIDs (see PROVENANCE.md).
//
//go:embed cca
var ccaFiles embed.FS

// CCAToken returns an Arm CCA attestation token made by Veraison with test
// keys, not on hardware: a tag-399 collection of a platform token (profile
// http://arm.com/CCA-SSD/1.0.0, ES256, lifecycle secured, four software
// components) and a realm token (profile tag:arm.com,2023:realm#1.0.0,
// ES384, RAK as a COSE_Key), whose platform challenge is the SHA-512 of the
// RAK. Its realm challenge is 0x41 0x42 repeated, not a kura binding.
// claimsJSON is Veraison's decoding of the claims as they were before the
// platform challenge was set to the RAK's hash.
func CCAToken() (token, claimsJSON []byte) {
	return readCCA("cca-evidence.cbor"), readCCA("cca-evidence.json")
}

// CCACoMIDs returns the CoMIDs (JSON) that go with CCAToken: ta, the
// platform attestation key (CPAK, a P-256 PEM key) tied to the token's
// implementation and instance ids; platform, the reference values of the
// platform's software components and configuration; and realm, those of
// the realm (RIM, REM0–3, personalization value).
func CCACoMIDs() (ta, platform, realm []byte) {
	return readCCA("comid-cca-ta.json"), readCCA("comid-cca-refval.json"), readCCA("comid-cca-realm-refval.json")
}

// readCCA returns a fresh copy of an embedded CCA file. The names are
// constants here, checked by this package's test.
func readCCA(name string) []byte {
	b, err := ccaFiles.ReadFile("cca/" + name)
	if err != nil {
		panic(err)
	}
	return b
}
