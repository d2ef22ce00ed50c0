package elgamal

import (
	"encoding/binary"
	"github.com/kura-cc/kura/mpc/internal/parallel"

	"github.com/oasisprotocol/curve25519-voi/curve"
)

// decodePoint parses a canonical, non-identity element into p.
func decodePoint(e *[PointSize]byte, p *curve.RistrettoPoint) error {
	// The identity's one canonical encoding is all zero, and decoding is
	// injective, so no other accepted encoding is the identity.
	if *e == ([PointSize]byte{}) {
		return ErrElement
	}
	// SetCompressed refuses s ≥ p, negative s and non-square ratios
	// (RFC 9496, section 4.3.1).
	if _, err := p.SetCompressed((*curve.CompressedRistretto)(e)); err != nil {
		return ErrElement
	}
	return nil
}

// encodePoint writes the canonical encoding of p to out.
func encodePoint(p *curve.RistrettoPoint, out *[PointSize]byte) {
	(*curve.CompressedRistretto)(out).SetRistrettoPoint(p)
}

// AppendBinary appends C1 || C2, each the 32-byte canonical ristretto255
// encoding of its component. It refuses a ciphertext with an identity
// component ([ErrElement]), which the decoder would refuse: the zero
// Ciphertext, a sum of nothing, or (with negligible probability) an
// unlucky encryption. Rerandomise such a sum first.
func (c *Ciphertext) AppendBinary(b []byte) ([]byte, error) {
	c1, c2 := c.points()
	if c1.IsIdentity() || c2.IsIdentity() {
		return b, ErrElement
	}
	var e [PointSize]byte
	encodePoint(c1, &e)
	b = append(b, e[:]...)
	encodePoint(c2, &e)
	return append(b, e[:]...), nil
}

// MarshalBinary returns the [CiphertextSize]-byte encoding C1 || C2.
func (c *Ciphertext) MarshalBinary() ([]byte, error) {
	return c.AppendBinary(make([]byte, 0, CiphertextSize))
}

// UnmarshalBinary parses C1 || C2: exactly [CiphertextSize] bytes, each
// half the canonical encoding of a group element other than the identity.
// On error c is left unchanged.
func (c *Ciphertext) UnmarshalBinary(b []byte) error {
	if len(b) != CiphertextSize {
		return ErrMalformed
	}
	var d Ciphertext
	if err := decodePoint((*[PointSize]byte)(b[:PointSize]), &d.c1); err != nil {
		return err
	}
	if err := decodePoint((*[PointSize]byte)(b[PointSize:]), &d.c2); err != nil {
		return err
	}
	d.set = true
	*c = d
	return nil
}

// AppendCiphertexts appends the list encoding of cs,
//
//	u32           n  (big-endian, n ≤ MaxCiphertexts)
//	n × [64]byte  C1 || C2
//
// encoding on workers goroutines (GOMAXPROCS when workers < 1). It refuses
// more than [MaxCiphertexts] ciphertexts ([ErrTooLarge]) and any
// ciphertext [Ciphertext.AppendBinary] refuses.
func AppendCiphertexts(b []byte, cs []Ciphertext, workers int) ([]byte, error) {
	if len(cs) > MaxCiphertexts {
		return b, ErrTooLarge
	}
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(len(cs)))
	b = append(b, make([]byte, len(cs)*CiphertextSize)...)
	body := b[start+4:]
	err := parallel.For(workers, len(cs), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if _, err := cs[i].AppendBinary(body[i*CiphertextSize : i*CiphertextSize : (i+1)*CiphertextSize]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return b[:start], err
	}
	return b, nil
}

// ParseCiphertexts parses a list encoded by [AppendCiphertexts]: b is
// exactly the count and that many ciphertexts, the count is at most max
// (and [MaxCiphertexts]; max < 1 means MaxCiphertexts), and every
// component is canonical and not the identity. It decodes on workers
// goroutines (GOMAXPROCS when workers < 1).
func ParseCiphertexts(b []byte, max, workers int) ([]Ciphertext, error) {
	if max < 1 || max > MaxCiphertexts {
		max = MaxCiphertexts
	}
	if len(b) < 4 {
		return nil, ErrMalformed
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(max) {
		return nil, ErrTooLarge
	}
	body := b[4:]
	if uint64(len(body)) != uint64(n)*CiphertextSize {
		return nil, ErrMalformed
	}
	out := make([]Ciphertext, n)
	err := parallel.For(workers, int(n), func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if err := out[i].UnmarshalBinary(body[i*CiphertextSize : (i+1)*CiphertextSize]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
