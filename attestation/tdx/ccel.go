package tdx

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"slices"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/internal/tcglog"
)

// CCEL measurement register indices (UEFI 2.10 §38.4.1, the CC
// measurement protocol TDVF implements): 0 is MRTD, 1 to 4 are RTMR0 to
// RTMR3. A CCEL event's PCRIndex field holds this index, not a TPM PCR.
const (
	ccelRegisters = 5
	algSHA384     = 0x000C
	rtmrSize      = sha512.Size384
)

// parseCCEL parses a CCEL log: a crypto-agile TCG log (tcglog.Parse) with
// measurement register indices 0 to 4, a SHA-384 digest on every event,
// and possibly the rest of the log area after the last event (all 0xFF or
// all 0x00).
func parseCCEL(data []byte) (*tcglog.Log, error) {
	l, err := tcglog.Parse(data, tcglog.Options{Registers: ccelRegisters, Index: "MR index", Padding: true})
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(l.Algs, func(a tcglog.AlgSize) bool { return a.Alg == algSHA384 }) {
		return nil, fmt.Errorf("%w: event log: the Spec ID event lists no SHA-384 digests, which RTMRs extend", attestation.ErrMalformed)
	}
	return l, nil
}

// rtmrReplay is what replaying a CCEL log gives: the four RTMRs, the
// number of events extended into each, and the events (as claims) in the
// order logged. Events for MRTD (index 0), which the log cannot explain,
// are counted, not reported.
type rtmrReplay struct {
	rtmrs      [4][rtmrSize]byte
	counts     [4]int
	events     []any
	unverified int
}

// replayRTMRs extends RTMR0–3, each from 48 zero bytes, with the SHA-384
// digests of log's events (RTMR = SHA-384(RTMR ‖ digest)), skipping
// EV_NO_ACTION events. An EV_SEPARATOR, EV_ACTION or EV_EFI_ACTION event
// whose digests are not the hashes of its data fails as
// attestation.ErrBinding naming it.
func replayRTMRs(l *tcglog.Log) (*rtmrReplay, error) {
	r := &rtmrReplay{events: []any{}}
	for i, e := range l.Events {
		if e.Type == tcglog.EvNoAction {
			continue
		}
		if err := e.CheckDataDigests(); err != nil {
			return nil, fmt.Errorf("%w: event %d (%s on MR index %d): %v", attestation.ErrBinding, i+1, tcglog.TypeName(e.Type), e.PCR, err)
		}
		if e.PCR == 0 {
			r.unverified++
			continue
		}
		idx := e.PCR - 1
		for _, d := range e.Digests {
			if d.Alg != algSHA384 {
				continue
			}
			h := sha512.New384()
			h.Write(r.rtmrs[idx][:])
			h.Write(d.Value)
			h.Sum(r.rtmrs[idx][:0])
		}
		r.counts[idx]++
		c := e.Claim("ccel")
		c["rtmr"] = idx
		r.events = append(r.events, c)
	}
	return r, nil
}

// checkRTMRs compares a replay with the quote's RTMRs and fails as
// attestation.ErrBinding naming the first that differs.
func (r *rtmrReplay) checkRTMRs(quoted [][]byte) error {
	for i := range r.rtmrs {
		if !bytes.Equal(r.rtmrs[i][:], quoted[i]) {
			return fmt.Errorf("%w: the CCEL event log does not replay to the quote's RTMRs: RTMR%d is %x but replaying the %d events the log records for it gives %x: it was extended with something the log does not record, or the log was altered",
				attestation.ErrBinding, i, quoted[i], r.counts[i], r.rtmrs[i])
		}
	}
	return nil
}
