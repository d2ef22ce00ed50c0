package elgamal

import (
	fp "github.com/cloudflare/circl/math/fp25519"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

type fpElt = fp.Elt

func newScalar(b [32]byte) *scalar.Scalar {
	s, err := scalar.NewFromCanonicalBytes(b[:])
	if err != nil {
		panic(err)
	}
	return s
}

// affine returns p's affine coordinates, reduced.
func affine(p ext) (x, y fp.Elt) {
	var zi fp.Elt
	fp.Inv(&zi, &p.Z)
	fp.Mul(&x, &p.X, &zi)
	fp.Mul(&y, &p.Y, &zi)
	fp.Modp(&x)
	fp.Modp(&y)
	return x, y
}

func sameX(p, q ext) bool {
	px, _ := affine(p)
	qx, _ := affine(q)
	return px == qx
}

func samePoint(p, q ext) bool {
	px, py := affine(p)
	qx, qy := affine(q)
	return px == qx && py == qy
}
