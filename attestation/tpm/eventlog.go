package tpm

import "github.com/kura-cc/kura/attestation/internal/tcglog"

// The TCG crypto-agile log parser is shared with attestation/tdx's CCEL
// replay; these names keep this package's code short.
type (
	eventLog = tcglog.Log
	event    = tcglog.Event
	digest   = tcglog.Digest
	algSize  = tcglog.AlgSize
)

const (
	numPCRs    = 24
	evNoAction = tcglog.EvNoAction
	// evNonHostInfo is EV_NONHOST_INFO, which Compute Engine uses (gce.go).
	evNonHostInfo = 0x11
)

// banks maps the TPM algorithm ids of the PCR banks kura replays to their
// names and hashes.
var banks = tcglog.Banks

// parseEventLog parses a crypto-agile PC Client event log (tcglog.Parse):
// PCR 0 to 23, nothing after the last event.
func parseEventLog(data []byte) (*eventLog, error) {
	return tcglog.Parse(data, tcglog.Options{Registers: numPCRs, Index: "PCR"})
}

func typeName(t uint32) string { return tcglog.TypeName(t) }

func allZero(b []byte) bool { return tcglog.AllZero(b) }
