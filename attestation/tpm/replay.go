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
// alone covers its PCRs in its bank.
func replay(quoted map[string]any, log *eventLog, ima *imaList) (*replayResult, error) {
	algOf := map[string]uint16{}
	for alg, b := range banks {
		algOf[b.name] = alg
	}
	imaPCRs := map[int]bool{}
	imaBank := ""
	if ima != nil {
		imaBank = banks[ima.bank].name
		for _, e := range ima.entries {
			imaPCRs[e.pcr] = true
		}
	}
	covered := func(k pcrKey) bool {
		if imaPCRs[k.idx] {
			return k.bank == imaBank
		}
		return log != nil
	}

	state := map[pcrKey][]byte{}
	count := map[pcrKey]int{}
	get := func(k pcrKey) []byte {
		if v, ok := state[k]; ok {
			return v
		}
		v := make([]byte, banks[algOf[k.bank]].hash.Size())
		switch {
		case k.idx >= 17 && k.idx <= 22:
			for i := range v {
				v[i] = 0xff
			}
		case k.idx == 0 && log != nil:
			v[len(v)-1] = log.locality
		}
		return v
	}
	extend := func(k pcrKey, d []byte) {
		h := banks[algOf[k.bank]].hash.New()
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
		for i, e := range log.events {
			if e.typ == evNoAction {
				continue
			}
			if err := e.checkDataDigests(); err != nil {
				return nil, fmt.Errorf("%w: event %d (%s on PCR %d): %v", attestation.ErrBinding, i+1, typeName(e.typ), e.pcr, err)
			}
			verified := false
			for _, d := range e.digests {
				b, ok := banks[d.alg]
				if !ok {
					continue
				}
				k := pcrKey{b.name, e.pcr}
				extend(k, d.value)
				verified = verified || (isQuoted(k) && covered(k))
			}
			if verified {
				claims = append(claims, e.claim("tcg"))
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

// dataHashedTypes are the event types whose digests are, by the PC Client
// Platform Firmware Profile, the hashes of their event data: for them the
// data is bound by the replay too.
var dataHashedTypes = map[uint32]bool{0x4: true, 0x5: true, 0x80000007: true} // EV_SEPARATOR, EV_ACTION, EV_EFI_ACTION

// checkDataDigests checks, for the event types whose digests hash their
// data, that every replayed bank's digest does.
func (e *event) checkDataDigests() error {
	if !dataHashedTypes[e.typ] {
		return nil
	}
	for _, d := range e.digests {
		b, ok := banks[d.alg]
		if !ok {
			continue
		}
		h := b.hash.New()
		h.Write(e.data)
		if !bytes.Equal(h.Sum(nil), d.value) {
			return fmt.Errorf("its %s digest %x is not the hash of its event data %q", b.name, d.value, describe(e.data))
		}
	}
	return nil
}
