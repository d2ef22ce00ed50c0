package prio

import (
	"encoding"
	"fmt"
	"math"

	"github.com/cloudflare/circl/vdaf/prio3/count"
	"github.com/cloudflare/circl/vdaf/prio3/histogram"
	"github.com/cloudflare/circl/vdaf/prio3/sum"
	"github.com/cloudflare/circl/vdaf/prio3/sumvec"
)

// The circl Prio3 types shared by every measurement type.
type (
	circlNonce       = count.Nonce
	circlVerifyKey   = count.VerifyKey
	circlPublicShare = count.PublicShare
	circlPrepMessage = count.PrepMessage
)

// scheme is one Prio3 instance seen through encoded shares. States are
// opaque to the caller.
type scheme interface {
	randSize() int
	shard(m Measurement, nonce *Nonce, rand []byte) (public []byte, inputs [Aggregators][]byte, err error)
	prepInit(vk *VerifyKey, nonce *Nonce, agg uint8, public, input []byte) (state any, prepShare []byte, err error)
	prepSharesToPrep(share0, share1 []byte) (msg []byte, err error)
	prepNext(state any, msg []byte) (out any, err error)
	aggregateInit() any
	aggregateUpdate(agg, out any)
	encodeAggShare(agg any) ([]byte, error)
	unshard(share0, share1 []byte, n uint64) ([]uint64, error)
}

// prio3VDAF is the method set common to circl's count, sum, sumvec and
// histogram.
type prio3VDAF[M, A, IS, PSh, PSt, OS, AS any] interface {
	Shard(M, *circlNonce, []byte) (circlPublicShare, []IS, error)
	PrepInit(*circlVerifyKey, *circlNonce, uint8, circlPublicShare, IS) (*PSt, *PSh, error)
	PrepSharesToPrep([]PSh) (*circlPrepMessage, error)
	PrepNext(*PSt, *circlPrepMessage) (*OS, error)
	AggregateInit() AS
	AggregateUpdate(*AS, *OS)
	Unshard([]AS, uint) (*A, error)
}

// adapter implements scheme over one circl VDAF. The new* functions return
// zero values sized for the task, which the encodings need to decode.
type adapter[M, A, IS, PSh, PSt, OS, AS any] struct {
	v           prio3VDAF[M, A, IS, PSh, PSt, OS, AS]
	rand        int
	publicLen   int
	jointRand   bool
	measure     func(Measurement) (M, error)
	result      func(*A) []uint64
	newInput    func(agg uint8) *IS
	newPrep     func() *PSh
	newPrepMsg  func() *circlPrepMessage
	newAggShare func() *AS
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) randSize() int { return a.rand }

func marshal(v any) ([]byte, error) {
	b, err := v.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b, nil
}

// unmarshal decodes b into v with circl's decoder, which requires exactly
// the task's length and canonical field elements.
func unmarshal(v any, b []byte, what string) error {
	if b == nil {
		b = []byte{} // circl refuses a nil slice even where zero bytes are expected
	}
	if err := v.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		return fmt.Errorf("%w: %s (%d bytes)", ErrMalformed, what, len(b))
	}
	return nil
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) shard(m Measurement, nonce *Nonce, rand []byte) (public []byte, inputs [Aggregators][]byte, err error) {
	meas, err := a.measure(m)
	if err != nil {
		return nil, inputs, err
	}
	pub, shares, err := a.v.Shard(meas, (*circlNonce)(nonce), rand)
	if err != nil {
		return nil, inputs, fmt.Errorf("%w: %w", ErrMeasurement, err)
	}
	if len(shares) != Aggregators {
		return nil, inputs, fmt.Errorf("%w: %d input shares", ErrTask, len(shares))
	}
	for i := range shares {
		if inputs[i], err = marshal(&shares[i]); err != nil {
			return nil, inputs, err
		}
	}
	return append([]byte{}, pub...), inputs, nil
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) prepInit(vk *VerifyKey, nonce *Nonce, agg uint8, public, input []byte) (any, []byte, error) {
	if len(public) != a.publicLen {
		return nil, nil, fmt.Errorf("%w: public share of %d bytes, want %d", ErrMalformed, len(public), a.publicLen)
	}
	in := a.newInput(agg)
	if err := unmarshal(in, input, "input share"); err != nil {
		return nil, nil, err
	}
	st, ps, err := a.v.PrepInit((*circlVerifyKey)(vk), (*circlNonce)(nonce), agg, circlPublicShare(public), *in)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidReport, err)
	}
	b, err := marshal(ps)
	return st, b, err
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) prepSharesToPrep(share0, share1 []byte) ([]byte, error) {
	shares := []PSh{*a.newPrep(), *a.newPrep()}
	if err := unmarshal(&shares[0], share0, "prep share 0"); err != nil {
		return nil, err
	}
	if err := unmarshal(&shares[1], share1, "prep share 1"); err != nil {
		return nil, err
	}
	msg, err := a.v.PrepSharesToPrep(shares)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidReport, err)
	}
	return marshal(msg)
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) prepNext(state any, msg []byte) (any, error) {
	st, ok := state.(*PSt)
	if !ok || st == nil {
		return nil, fmt.Errorf("%w: preparation state of %T", ErrTask, state)
	}
	m := a.newPrepMsg()
	if err := unmarshal(m, msg, "prep message"); err != nil {
		return nil, err
	}
	out, err := a.v.PrepNext(st, m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidReport, err)
	}
	return out, nil
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) aggregateInit() any {
	s := a.v.AggregateInit()
	return &s
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) aggregateUpdate(agg, out any) {
	a.v.AggregateUpdate(agg.(*AS), out.(*OS))
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) encodeAggShare(agg any) ([]byte, error) {
	return marshal(agg.(*AS))
}

func (a *adapter[M, A, IS, PSh, PSt, OS, AS]) unshard(share0, share1 []byte, n uint64) ([]uint64, error) {
	shares := []AS{*a.newAggShare(), *a.newAggShare()}
	if err := unmarshal(&shares[0], share0, "aggregate share 0"); err != nil {
		return nil, err
	}
	if err := unmarshal(&shares[1], share1, "aggregate share 1"); err != nil {
		return nil, err
	}
	if n > math.MaxUint32 {
		return nil, fmt.Errorf("%w: %d reports", ErrMismatch, n)
	}
	res, err := a.v.Unshard(shares, uint(n))
	if err != nil {
		return nil, fmt.Errorf("unshard: %w", err)
	}
	return a.result(res), nil
}

// chunkLength is the gadget chunk length for a measurement of n field
// elements: about √n, as draft-irtf-cfrg-vdaf recommends. Both aggregators
// and the client derive it from the task, so it is not transmitted.
func chunkLength(n uint) uint {
	c := uint(math.Sqrt(float64(n)))
	if c < 1 {
		c = 1
	}
	return c
}

func checkType(m Measurement, want Type) error {
	if m.typ != want {
		return fmt.Errorf("%w: %v for a %v task", ErrMeasurement, m.typ, want)
	}
	return nil
}

// newScheme returns the circl Prio3 instance for t.
func newScheme(t *Task) (scheme, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	ctx := t.context()
	single := func(v *uint64) []uint64 { return []uint64{*v} }
	vector := func(v *[]uint64) []uint64 { return append([]uint64(nil), (*v)...) }
	switch t.Type {
	case TypeCount:
		v, err := count.New(Aggregators, ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTask, err)
		}
		p := v.Params()
		return &adapter[bool, uint64, count.InputShare, count.PrepShare, count.PrepState, count.OutShare, count.AggShare]{
			v: v, rand: int(p.RandSize()), publicLen: publicLen(p.JointRandLength()),
			measure: func(m Measurement) (bool, error) {
				if err := checkType(m, TypeCount); err != nil {
					return false, err
				}
				return m.v == 1, nil
			},
			result:      single,
			newInput:    func(agg uint8) *count.InputShare { return new(count.InputShare).New(&p, uint(agg)) },
			newPrep:     func() *count.PrepShare { return new(count.PrepShare).New(&p) },
			newPrepMsg:  func() *circlPrepMessage { return new(circlPrepMessage).New(&p) },
			newAggShare: func() *count.AggShare { return new(count.AggShare).New(&p) },
		}, nil
	case TypeSum:
		v, err := sum.New(Aggregators, 1<<t.Bits-1, ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTask, err)
		}
		p := v.Params()
		return &adapter[uint64, uint64, sum.InputShare, sum.PrepShare, sum.PrepState, sum.OutShare, sum.AggShare]{
			v: v, rand: int(p.RandSize()), publicLen: publicLen(p.JointRandLength()),
			measure: func(m Measurement) (uint64, error) {
				if err := checkType(m, TypeSum); err != nil {
					return 0, err
				}
				if m.v>>t.Bits != 0 {
					return 0, fmt.Errorf("%w: %d does not fit in %d bits", ErrMeasurement, m.v, t.Bits)
				}
				return m.v, nil
			},
			result:      single,
			newInput:    func(agg uint8) *sum.InputShare { return new(sum.InputShare).New(&p, uint(agg)) },
			newPrep:     func() *sum.PrepShare { return new(sum.PrepShare).New(&p) },
			newPrepMsg:  func() *circlPrepMessage { return new(circlPrepMessage).New(&p) },
			newAggShare: func() *sum.AggShare { return new(sum.AggShare).New(&p) },
		}, nil
	case TypeHistogram:
		v, err := histogram.New(Aggregators, t.Length, chunkLength(t.Length), ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTask, err)
		}
		p := v.Params()
		return &adapter[uint64, []uint64, histogram.InputShare, histogram.PrepShare, histogram.PrepState, histogram.OutShare, histogram.AggShare]{
			v: v, rand: int(p.RandSize()), publicLen: publicLen(p.JointRandLength()),
			measure: func(m Measurement) (uint64, error) {
				if err := checkType(m, TypeHistogram); err != nil {
					return 0, err
				}
				if m.v >= uint64(t.Length) {
					return 0, fmt.Errorf("%w: bucket %d of %d", ErrMeasurement, m.v, t.Length)
				}
				return m.v, nil
			},
			result:      vector,
			newInput:    func(agg uint8) *histogram.InputShare { return new(histogram.InputShare).New(&p, uint(agg)) },
			newPrep:     func() *histogram.PrepShare { return new(histogram.PrepShare).New(&p) },
			newPrepMsg:  func() *circlPrepMessage { return new(circlPrepMessage).New(&p) },
			newAggShare: func() *histogram.AggShare { return new(histogram.AggShare).New(&p) },
		}, nil
	case TypeSumVec:
		v, err := sumvec.New(Aggregators, t.Length, t.Bits, chunkLength(t.Length*t.Bits), ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTask, err)
		}
		p := v.Params()
		return &adapter[[]uint64, []uint64, sumvec.InputShare, sumvec.PrepShare, sumvec.PrepState, sumvec.OutShare, sumvec.AggShare]{
			v: v, rand: int(p.RandSize()), publicLen: publicLen(p.JointRandLength()),
			measure: func(m Measurement) ([]uint64, error) {
				if err := checkType(m, TypeSumVec); err != nil {
					return nil, err
				}
				if len(m.vec) != int(t.Length) {
					return nil, fmt.Errorf("%w: %d entries, want %d", ErrMeasurement, len(m.vec), t.Length)
				}
				for i, x := range m.vec {
					if t.Bits < 64 && x>>t.Bits != 0 {
						return nil, fmt.Errorf("%w: entry %d does not fit in %d bits", ErrMeasurement, i, t.Bits)
					}
				}
				return m.vec, nil
			},
			result:      vector,
			newInput:    func(agg uint8) *sumvec.InputShare { return new(sumvec.InputShare).New(&p, uint(agg)) },
			newPrep:     func() *sumvec.PrepShare { return new(sumvec.PrepShare).New(&p) },
			newPrepMsg:  func() *circlPrepMessage { return new(circlPrepMessage).New(&p) },
			newAggShare: func() *sumvec.AggShare { return new(sumvec.AggShare).New(&p) },
		}, nil
	}
	return nil, fmt.Errorf("%w: unknown type %d", ErrTask, t.Type)
}

// publicLen is the length of the public share: one joint randomness part
// per aggregator when the FLP uses joint randomness, else nothing.
func publicLen(jointRandLen uint) int {
	if jointRandLen == 0 {
		return 0
	}
	return 32 * Aggregators
}
