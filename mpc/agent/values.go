package agent

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/mpc/elgamal"
	"github.com/kura-cc/kura/mpc/psi"
)

// The responder's values (the columns of the analysis's sum and avg
// measures, docs/spec/mpc.md §3.1) travel encrypted under a key the two
// agents share: each holds a secret share, the responder encrypts with
// their joint public key, the initiator adds up each group's ciphertexts
// and both partial decryptions are needed to read a sum. Per identifier
// and measure the payload holds two ciphertexts: the identifier's total,
// clamped to the measure's clip and offset by its minimum (so it is not
// negative), and 1 if it has a value (0 if NULL).

// sumMeasures returns the indexes of the analysis's sum and avg measures,
// and for each whether its column is the initiator's.
func sumMeasures(an *collab.Analysis) (sums []int, initiators []bool) {
	first := initiatorDataset(an)
	for i, ms := range an.Aggregate.Measures {
		if ms.Func == collab.AggSum || ms.Func == collab.AggAvg {
			sums = append(sums, i)
			initiators = append(initiators, strings.HasPrefix(ms.Column, first+"."))
		}
	}
	return sums, initiators
}

// side returns the sum measures over one side's columns, in order.
func (p *plan) side(initiator bool) []int {
	var out []int
	for k, m := range p.sums {
		if p.initiatorSum[k] == initiator {
			out = append(out, m)
		}
	}
	return out
}

// payloadSize is the size of the payload of a responder's element (side
// false) or an initiator's (side true): two ciphertexts per measure.
func (p *plan) payloadSize(initiator bool) int {
	return 2 * elgamal.CiphertextSize * len(p.side(initiator))
}

// parseShare parses a hex public key share.
func parseShare(s string) (elgamal.PublicShare, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return elgamal.PublicShare{}, fmt.Errorf("%w: value key %q", ErrMalformed, s)
	}
	return elgamal.ParsePublicShare(b)
}

func shareHex(k *elgamal.KeyShare) string {
	pub := k.Public()
	return hex.EncodeToString(pub[:])
}

// encryptValues returns the payload of each identifier: for each of
// measures (the sum measures over this agent's columns), its value (the
// total clamped to the clip, minus the clip's minimum) and 1, or 0 and 0
// when NULL, encrypted under pk. values[i] are identifier i's totals.
func (a *Agent) encryptValues(p *plan, pk *elgamal.PublicKey, values [][]*int64, measures []int) ([]byte, error) {
	ms := make([]uint64, 0, 2*len(measures)*len(values))
	for _, vals := range values {
		if len(vals) != len(measures) {
			return nil, fmt.Errorf("%w: %d values for %d summed measures", ErrAgent, len(vals), len(measures))
		}
		for k, m := range measures {
			clip := p.an.Aggregate.Measures[m].Clip
			if vals[k] == nil {
				ms = append(ms, 0, 0)
				continue
			}
			v := min(max(*vals[k], clip.Min), clip.Max)
			ms = append(ms, uint64(v-clip.Min), 1)
		}
	}
	cs, err := pk.EncryptMany(ms, a.cfg.Workers)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(cs)*elgamal.CiphertextSize)
	for i := range cs {
		if out, err = cs[i].AppendBinary(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rerandomizeAll rerandomises every ciphertext of a concatenation under
// pk, so that its sender cannot recognise them.
func (a *Agent) rerandomizeAll(pk *elgamal.PublicKey, b []byte) ([]byte, error) {
	if len(b)%elgamal.CiphertextSize != 0 {
		return nil, fmt.Errorf("%w: %d bytes of ciphertexts", ErrMalformed, len(b))
	}
	out := make([]byte, 0, len(b))
	for off := 0; off < len(b); off += elgamal.CiphertextSize {
		var c elgamal.Ciphertext
		if err := c.UnmarshalBinary(b[off : off+elgamal.CiphertextSize]); err != nil {
			return nil, fmt.Errorf("%w: the initiator's encrypted value %d: %w", ErrMalformed, off/elgamal.CiphertextSize, err)
		}
		r, err := pk.Rerandomize(&c)
		if err != nil {
			return nil, err
		}
		if out, err = r.AppendBinary(out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// groupSums adds up, for each group and sum measure, the encrypted values
// (total and count) of the group's matches — the responder's payloads of
// its matched elements for its columns, the initiator's own payloads as the
// responder returned them for the initiator's — and rerandomises each
// total, so that the responder cannot tell which ciphertexts went into it.
func (a *Agent) groupSums(p *plan, pk *elgamal.PublicKey, resp, req []byte, res *psi.Result) ([]elgamal.Ciphertext, error) {
	matches, reqMatches := res.Matches(), res.RequestMatches()
	out := make([]elgamal.Ciphertext, 0, len(matches)*2*len(p.sums))
	for g := range matches {
		ki, kr := 0, 0 // positions among the initiator's and the responder's sum measures
		for k := range p.sums {
			payloads, idx, size, pos := resp, matches[g], p.payloadSize(false), kr
			if p.initiatorSum[k] {
				payloads, idx, size, pos = req, reqMatches[g], p.payloadSize(true), ki
				ki++
			} else {
				kr++
			}
			var acc [2]elgamal.Ciphertext
			for _, j := range idx {
				for h := range 2 {
					var c elgamal.Ciphertext
					off := j*size + (2*pos+h)*elgamal.CiphertextSize
					if off+elgamal.CiphertextSize > len(payloads) {
						return nil, fmt.Errorf("%w: encrypted value %d is missing", ErrMalformed, j)
					}
					if err := c.UnmarshalBinary(payloads[off : off+elgamal.CiphertextSize]); err != nil {
						return nil, fmt.Errorf("%w: encrypted value %d: %w", ErrMalformed, j, err)
					}
					acc[h].Add(&acc[h], &c)
				}
			}
			for h := range acc {
				c, err := pk.Rerandomize(&acc[h])
				if err != nil {
					return nil, err
				}
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// appendPartials encodes partial decryptions: u32 count, then each.
func appendPartials(b []byte, ps []elgamal.Partial) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(ps)))
	for _, p := range ps {
		b = append(b, p[:]...)
	}
	return b
}

// parsePartials parses exactly n partial decryptions.
func parsePartials(b []byte, n int) ([]elgamal.Partial, error) {
	if len(b) != 4+n*elgamal.PointSize || binary.BigEndian.Uint32(b) != uint32(n) {
		return nil, fmt.Errorf("%w: want %d partial decryptions", ErrMalformed, n)
	}
	out := make([]elgamal.Partial, n)
	for i := range out {
		var err error
		if out[i], err = elgamal.ParsePartial(b[4+i*elgamal.PointSize : 4+(i+1)*elgamal.PointSize]); err != nil {
			return nil, fmt.Errorf("%w: partial decryption %d: %w", ErrMalformed, i, err)
		}
	}
	return out, nil
}

// decryptSums decrypts each group's totals with both partial decryptions
// and returns, per group, each measure's exact clamped sum and count of
// values. counts are the groups' intersection sizes, which bound the sums.
func decryptSums(p *plan, cs []elgamal.Ciphertext, mine *elgamal.KeyShare, theirs []elgamal.Partial, counts []int) ([][]analysis.Exact, error) {
	per := 2 * len(p.sums)
	var span, most uint64 = 1, 1
	for _, m := range p.sums {
		c := p.an.Aggregate.Measures[m].Clip
		span = max(span, uint64(c.Max-c.Min))
	}
	for _, n := range counts {
		most = max(most, uint64(n))
	}
	if most > elgamal.MaxBound/span {
		return nil, fmt.Errorf("%w: sums of up to %d values of range %d exceed what can be decrypted (%d)", ErrRefused, most, span, uint64(elgamal.MaxBound))
	}
	dl, err := elgamal.NewDLog(most * span)
	if err != nil {
		return nil, err
	}
	out := make([][]analysis.Exact, len(counts))
	for g := range counts {
		out[g] = make([]analysis.Exact, len(p.sums))
		for k, m := range p.sums {
			var v [2]uint64
			for h := range 2 {
				c := &cs[g*per+2*k+h]
				pa, err := mine.PartialDecrypt(c)
				if err != nil {
					return nil, err
				}
				if v[h], err = elgamal.Decrypt(c, pa, theirs[g*per+2*k+h], dl); err != nil {
					return nil, fmt.Errorf("%w: group %d, measure %d: %w", ErrTampered, g, m, err)
				}
			}
			clip := p.an.Aggregate.Measures[m].Clip
			out[g][k] = analysis.Exact{Sum: int64(v[0]) + clip.Min*int64(v[1]), Count: int64(v[1])}
		}
	}
	return out, nil
}
