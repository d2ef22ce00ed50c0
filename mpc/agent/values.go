package agent

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/kura-cc/kura/analysis"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/mpc/elgamal"
)

// The responder's values (the columns of the analysis's sum and avg
// measures, docs/spec/mpc.md §3.1) travel encrypted under a key the two
// agents share: each holds a secret share, the responder encrypts with
// their joint public key, the initiator adds up each group's ciphertexts
// and both partial decryptions are needed to read a sum. Per identifier
// and measure the payload holds two ciphertexts: the identifier's total,
// clamped to the measure's clip and offset by its minimum (so it is not
// negative), and 1 if it has a value (0 if NULL).

// sumMeasures returns the indexes of the analysis's sum and avg measures.
func sumMeasures(an *collab.Analysis) []int {
	var out []int
	for i, ms := range an.Aggregate.Measures {
		if ms.Func == collab.AggSum || ms.Func == collab.AggAvg {
			out = append(out, i)
		}
	}
	return out
}

// payloadSize is the size of a responder element's payload.
func (p *plan) payloadSize() int { return 2 * elgamal.CiphertextSize * len(p.sums) }

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

// encryptValues returns the responder's payload for each identifier of its
// one group.
func (a *Agent) encryptValues(p *plan, pk *elgamal.PublicKey, g *analysis.PSIGroup) ([][]byte, error) {
	if len(g.Values) != len(g.IDs) {
		return nil, fmt.Errorf("%w: %d values for %d identifiers", ErrAgent, len(g.Values), len(g.IDs))
	}
	ms := make([]uint64, 0, 2*len(p.sums)*len(g.IDs))
	for _, vals := range g.Values {
		for k, m := range p.sums {
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
	size := p.payloadSize()
	out := make([][]byte, len(g.IDs))
	for i := range out {
		b := make([]byte, 0, size)
		for j := range 2 * len(p.sums) {
			if b, err = cs[i*2*len(p.sums)+j].AppendBinary(b); err != nil {
				return nil, err
			}
		}
		out[i] = b
	}
	return out, nil
}

// groupSums adds up, for each group and sum measure, the payloads of the
// responder's elements that matched the group (value and count), and
// rerandomises each total, so that the responder cannot tell which
// ciphertexts went into it.
func (a *Agent) groupSums(p *plan, pk *elgamal.PublicKey, payloads []byte, matches [][]int) ([]elgamal.Ciphertext, error) {
	size, per := p.payloadSize(), 2*len(p.sums)
	out := make([]elgamal.Ciphertext, 0, len(matches)*per)
	for _, idx := range matches {
		acc := make([]elgamal.Ciphertext, per)
		for _, j := range idx {
			for k := range per {
				var c elgamal.Ciphertext
				off := j*size + k*elgamal.CiphertextSize
				if err := c.UnmarshalBinary(payloads[off : off+elgamal.CiphertextSize]); err != nil {
					return nil, fmt.Errorf("%w: the responder's encrypted value %d: %w", ErrMalformed, j, err)
				}
				acc[k].Add(&acc[k], &c)
			}
		}
		for k := range acc {
			c, err := pk.Rerandomize(&acc[k])
			if err != nil {
				return nil, err
			}
			out = append(out, c)
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
