package psi

import (
	"crypto/sha512"
	"encoding"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/group"
	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// The bulk arithmetic (hash-to-group, variable-base scalar multiplication,
// decoding and encoding of every element) runs on curve25519-voi, whose
// AVX2 point arithmetic multiplies about twice as fast as circl's; circl
// still draws the secret scalars. curve_test.go checks voi against circl
// byte for byte and against RFC 9496's vectors, and FuzzDecode checks that
// both refuse the same encodings.

// voiScalar returns k as a curve25519-voi scalar. The caller zeroises it.
func voiScalar(k group.Scalar) *scalar.Scalar {
	b, err := k.MarshalBinary()
	defer clear(b)
	if err != nil {
		panic("psi: scalar encoding failed")
	}
	s, err := scalar.NewFromCanonicalBytes(b)
	if err != nil {
		// circl's ristretto255 scalars are reduced: this cannot happen.
		panic("psi: non-canonical scalar")
	}
	return s
}

// decodePoint parses a canonical, non-identity element into p.
func decodePoint(e *Element, p *curve.RistrettoPoint) error {
	// The identity's one canonical encoding is all zero, and decoding is
	// injective, so no other accepted encoding is the identity.
	if *e == (Element{}) {
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
func encodePoint(p *curve.RistrettoPoint, out *Element) {
	(*curve.CompressedRistretto)(out).SetRistrettoPoint(p)
}

// hasher is hash_to_ristretto255 with expand_message_xmd and SHA-512
// (RFC 9380 section 5.3.1, RFC 9496 section 4.3.4) for one DST. A hasher
// is used by one goroutine at a time.
type hasher struct {
	h hash.Hash
	// zpad is h's state after the 128-byte zero block that starts b_0.
	zpad    []byte
	dstTail []byte // DST_prime = DST || I2OSP(len(DST), 1)
	b0      [sha512.Size]byte
	b1      [sha512.Size]byte
	suffix  [3]byte
	one     [1]byte
}

// xmdLen is len_in_bytes: 64 uniform bytes, one SHA-512 block of output.
const xmdLen = 64

func newHasher(dst []byte) *hasher {
	h := sha512.New()
	if len(dst) > 255 {
		h.Write([]byte("H2C-OVERSIZE-DST-"))
		h.Write(dst)
		dst = h.Sum(nil)
		h.Reset()
	}
	x := &hasher{h: h, suffix: [3]byte{xmdLen >> 8, xmdLen & 0xff, 0}, one: [1]byte{1}}
	x.dstTail = append(append([]byte(nil), dst...), byte(len(dst)))
	var zero [128]byte // Z_pad = I2OSP(0, r_in_bytes), one SHA-512 block
	h.Write(zero[:])
	var err error
	if x.zpad, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
		panic(fmt.Sprintf("psi: sha512 state: %v", err))
	}
	return x
}

// hash sets p to the ristretto255 hash of msg.
func (x *hasher) hash(p *curve.RistrettoPoint, msg []byte) {
	// b_0 = H(Z_pad || msg || I2OSP(len_in_bytes, 2) || I2OSP(0, 1) || DST_prime)
	if err := x.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(x.zpad); err != nil {
		panic(fmt.Sprintf("psi: sha512 state: %v", err))
	}
	x.h.Write(msg)
	x.h.Write(x.suffix[:])
	x.h.Write(x.dstTail)
	x.h.Sum(x.b0[:0])
	// b_1 = H(b_0 || I2OSP(1, 1) || DST_prime); ell = 1, so uniform = b_1.
	x.h.Reset()
	x.h.Write(x.b0[:])
	x.h.Write(x.one[:])
	x.h.Write(x.dstTail)
	x.h.Sum(x.b1[:0])
	if _, err := p.SetUniformBytes(x.b1[:]); err != nil {
		panic("psi: one-way map: " + err.Error())
	}
}
