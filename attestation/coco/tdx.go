package coco

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tdx"
)

// parseTDX reads guest-components' TdxEvidence:
// {"quote": base64, "cc_eventlog": base64 | null, "aa_eventlog": string | null}.
// The event logs are checked for type only and dropped: a CoCo guest's
// attestation agent extends RTMR3 with the events of aa_eventlog, which
// the CCEL log does not record, so kura's CCEL replay (which compares all
// four RTMRs, docs/spec/attestation.md §4.2) would refuse it; kura's
// claims for such evidence come from the signed quote alone.
func parseTDX(m map[string]json.RawMessage) (*attestation.Bundle, error) {
	if err := fields(m, "tdx evidence", []string{"quote"}, []string{"cc_eventlog", "aa_eventlog"}); err != nil {
		return nil, err
	}
	for _, k := range []string{"cc_eventlog", "aa_eventlog"} {
		if _, err := stringField(m, k, false); err != nil {
			return nil, err
		}
	}
	q, err := stringField(m, "quote", true)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.DecodedLen(len(q)) > tdx.MaxQuoteSize+3 {
		return nil, fmt.Errorf("%w: quote is over %d bytes", attestation.ErrMalformed, tdx.MaxQuoteSize)
	}
	quote, err := base64.StdEncoding.Strict().DecodeString(q)
	if err != nil {
		return nil, fmt.Errorf("%w: quote is not standard base64: %v", attestation.ErrMalformed, err)
	}
	switch {
	case len(quote) == 0:
		return nil, fmt.Errorf("%w: quote is empty", attestation.ErrMalformed)
	case len(quote) > tdx.MaxQuoteSize:
		return nil, fmt.Errorf("%w: quote is %d bytes, limit is %d", attestation.ErrMalformed, len(quote), tdx.MaxQuoteSize)
	}
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.TDX, Evidence: quote}, nil
}
