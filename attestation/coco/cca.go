package coco

import (
	"encoding/json"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/cca"
)

// parseCCA reads guest-components' CcaEvidence: {"token": [bytes]}, the CCA
// attestation token the RMM returned through configfs-tsm, as serde writes
// a Vec<u8>. The attester asks for a token whose realm challenge is the
// report_data it was given, zero-padded to 64 bytes: the CoCo rule's value.
func parseCCA(m map[string]json.RawMessage) (*attestation.Bundle, error) {
	if err := fields(m, "cca evidence", []string{"token"}, nil); err != nil {
		return nil, err
	}
	token, err := byteArray(m["token"], "token", -1, cca.MaxTokenSize)
	if err != nil {
		return nil, err
	}
	b := &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.CCA, Evidence: token}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}
