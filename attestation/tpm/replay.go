package tpm

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"github.com/kura-cc/kura/attestation"
)

// replayResult is what a replay establishes: the events whose PCR it
// compared with a quoted value (as claims), the PCRs compared, and the
// number of events for PCRs the quote does not cover.
type replayResult struct {
	events     []any
	replayed   []string // "sha256:7"
	unverified int
}

// pcrKey names a PCR of a bank.
// imaPCR is the PCR Linux IMA extends.
const imaPCR = 10

type pcrKey struct {
	bank string
	idx  int
}

// replay extends each quoted bank's PCRs with the events of log and ima (either may be nil)
// and compares the results with the quoted values (bank → decimal index →
// hex, as azure.TPMQuote.CheckPCRs returns them). With a TCG log every
// quoted PCR is compared (a PCR without events must hold its reset value),
// except, in banks other than the IMA list's, the PCRs the IMA list
// extends: the ASCII list carries one template hash per entry. An IMA list
// alone covers its PCRs in its bank. Without an IMA list, PCR 10 (IMA's,
// by Linux convention) is covered only if the TCG log records events for
// it: its value is then reported, not explained.
func replay(quoted map[string]any, log *eventLog, ima *imaList) (*replayResult, error) {
	algOf := map[string]uint16{}
	for alg, b := range banks {
		algOf[b.Name] = alg
	}
	imaPCRs := map[int]bool{}
	imaBank := ""
	if ima != nil {
		imaBank = banks[ima.bank].Name
		for _, e := range ima.entries {
			imaPCRs[e.pcr] = true
		}
	}
	logPCRs := map[int]bool{}
	if log != nil {
		for _, e := range log.Events {
			logPCRs[e.PCR] = true
		}
	}
	covered := func(k pcrKey) bool {
		switch {
		case imaPCRs[k.idx]:
			return k.bank == imaBank
		case k.idx == imaPCR && ima == nil:
			return logPCRs[k.idx]
		}
		return log != nil
	}

	state := map[pcrKey][]byte{}
	count := map[pcrKey]int{}
	get := func(k pcrKey) []byte {
		if v, ok := state[k]; ok {
			return v
		}
		v := make([]byte, banks[algOf[k.bank]].Hash.Size())
		switch {
		case k.idx >= 17 && k.idx <= 22:
			for i := range v {
				v[i] = 0xff
			}
		case k.idx == 0 && log != nil:
			v[len(v)-1] = log.Locality
		}
		return v
	}
	extend := func(k pcrKey, d []byte) {
		h := banks[algOf[k.bank]].Hash.New()
		h.Write(get(k))
		h.Write(d)
		state[k] = h.Sum(nil)
		count[k]++
	}
	isQuoted := func(k pcrKey) bool {
		bank, ok := quoted[k.bank].(map[string]any)
		if !ok {
			return false
		}
		_, ok = bank[strconv.Itoa(k.idx)]
		return ok
	}

	res := &replayResult{}
	var claims []map[string]any
	if log != nil {
		for i, e := range log.Events {
			if e.Type == evNoAction {
				continue
			}
			if err := e.CheckDataDigests(); err != nil {
				return nil, fmt.Errorf("%w: event %d (%s on PCR %d): %v", attestation.ErrBinding, i+1, typeName(e.Type), e.PCR, err)
			}
			verified := false
			for _, d := range e.Digests {
				b, ok := banks[d.Alg]
				if !ok {
					continue
				}
				k := pcrKey{b.Name, e.PCR}
				extend(k, d.Value)
				verified = verified || (isQuoted(k) && covered(k))
			}
			if verified {
				claims = append(claims, e.Claim("tcg"))
			} else {
				res.unverified++
			}
		}
	}
	if ima != nil {
		for _, e := range ima.entries {
			k := pcrKey{imaBank, e.pcr}
			extend(k, e.extendValue())
			if isQuoted(k) {
				claims = append(claims, e.claim(imaBank))
			} else {
				res.unverified++
			}
		}
	}

	var keys []pcrKey
	for name, b := range quoted {
		for idx := range b.(map[string]any) {
			n, _ := strconv.Atoi(idx)
			keys = append(keys, pcrKey{name, n})
		}
	}
	slices.SortFunc(keys, func(a, b pcrKey) int {
		if a.bank != b.bank {
			return bytes.Compare([]byte(a.bank), []byte(b.bank))
		}
		return a.idx - b.idx
	})
	for _, k := range keys {
		if !covered(k) {
			continue
		}
		want, _ := hex.DecodeString(quoted[k.bank].(map[string]any)[strconv.Itoa(k.idx)].(string))
		if got := get(k); !bytes.Equal(got, want) {
			return nil, fmt.Errorf("%w: the event logs do not replay to the quoted PCRs: PCR %s:%d is %x but replaying the %d events the logs record for it gives %x: it was extended with something the logs do not record, or the logs were altered",
				attestation.ErrBinding, k.bank, k.idx, want, count[k], got)
		}
		res.replayed = append(res.replayed, fmt.Sprintf("%s:%d", k.bank, k.idx))
	}
	for _, c := range claims {
		res.events = append(res.events, c)
	}
	return res, nil
}
