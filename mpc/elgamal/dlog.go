package elgamal

import (
	"encoding/binary"
	"math"

	fp "github.com/cloudflare/circl/math/fp25519"
	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// MaxBound is the largest bound [NewDLog] accepts. A solve at this bound
// takes up to 2^27 giant steps (tens of seconds on one core).
const MaxBound = 1 << 48

// maxBaby caps the baby steps at 2^20 − 1, for a table of 2^21 slots of 12
// bytes: 24 MiB.
const maxBaby = 1<<20 - 1

// chunk is the number of points normalised with one field inversion.
const chunk = 1024

// DLog recovers m from m·G for m in [0, Bound()] by baby-step giant-step.
// Build it once per bound with [NewDLog]; it is then read only and safe for
// concurrent use by any number of [Decrypt] calls.
//
// The baby steps are the points j·H for j ∈ [0, t], H = 4·G on the Edwards
// curve, keyed by the low 64 bits of their affine y coordinate, which
// j·H and −j·H share: one table covers [−t, t], and the giant stride is
// 2t+1. With t = min(⌊√bound⌋, 2^20 − 1), building takes t point additions
// and a solve at most bound/(2t+1) of them (batched, one field inversion
// per 1024 points), plus one constant-time verification of each candidate
// (a key collision only costs a verification). At bound 2^40 the table
// holds 2^20 entries in 24 MiB; at 2^32, 2^16 entries in 1.5 MiB.
type DLog struct {
	bound uint64
	t     uint64 // baby steps cover ±t
	s     uint64 // giant stride 2t+1
	keys  []uint64
	vals  []uint32 // j+1; 0 marks an empty slot
	mask  uint64
	h     niels // H
	tH    niels // t·H
	sH    niels // s·H
}

// NewDLog builds the baby-step table for plaintexts in [0, bound]. It
// refuses bound > [MaxBound]. Callers whose values lie in [0, max] and who
// sum at most n of them pass n·max (checking that it does not overflow).
func NewDLog(bound uint64) (*DLog, error) {
	if bound > MaxBound {
		return nil, ErrBound
	}
	t := uint64(math.Sqrt(float64(bound)))
	for t*t > bound {
		t--
	}
	for (t+1)*(t+1) <= bound {
		t++
	}
	t = max(1, min(t, maxBaby))
	slots := uint64(1)
	for slots < 2*(t+1) {
		slots <<= 1
	}
	d := &DLog{
		bound: bound,
		t:     t,
		s:     2*t + 1,
		keys:  make([]uint64, slots),
		vals:  make([]uint32, slots),
		mask:  slots - 1,
	}
	d.h = toNiels(mulG(1))
	d.tH = toNiels(mulG(t))
	d.sH = toNiels(mulG(d.s))

	pts := make([]ext, chunk)
	keys := make([]uint64, chunk)
	scratch := make([]fp.Elt, chunk)
	cur := extIdentity()
	for j0 := uint64(0); j0 <= t; j0 += chunk {
		n := int(min(chunk, t+1-j0))
		for i := range n {
			pts[i] = cur
			cur.add(&d.h)
		}
		affineKeys(pts[:n], keys[:n], scratch[:n])
		for i, k := range keys[:n] {
			d.insert(k, uint32(j0)+uint32(i))
		}
	}
	return d, nil
}

// Bound returns the largest plaintext d recovers.
func (d *DLog) Bound() uint64 { return d.bound }

func (d *DLog) insert(key uint64, j uint32) {
	i := key & d.mask
	for d.vals[i] != 0 {
		i = (i + 1) & d.mask
	}
	d.keys[i], d.vals[i] = key, j+1
}

// solve returns m ∈ [0, bound] with M = m·G, or ErrOutOfRange.
func (d *DLog) solve(M *curve.RistrettoPoint) (uint64, error) {
	q, ok := phi(M)
	if !ok {
		return 0, ErrElement
	}
	// Q_k = φ(M) − (t + k·s)·H for k = 0, …, ⌊bound/s⌋; Q_k = ±j·H means
	// m = t + k·s ± j.
	q.sub(&d.tH)
	giant := d.bound / d.s
	pts := make([]ext, chunk)
	keys := make([]uint64, chunk)
	scratch := make([]fp.Elt, chunk)
	for k0 := uint64(0); k0 <= giant; k0 += chunk {
		n := int(min(chunk, giant+1-k0))
		for i := range n {
			pts[i] = q
			q.sub(&d.sH)
		}
		affineKeys(pts[:n], keys[:n], scratch[:n])
		for i, key := range keys[:n] {
			base := d.t + (k0+uint64(i))*d.s
			for slot := key & d.mask; d.vals[slot] != 0; slot = (slot + 1) & d.mask {
				if d.keys[slot] != key {
					continue
				}
				j := uint64(d.vals[slot] - 1)
				if m := base - j; verify(M, m, d.bound) {
					return m, nil
				}
				if m := base + j; j != 0 && verify(M, m, d.bound) {
					return m, nil
				}
			}
		}
	}
	return 0, ErrOutOfRange
}

// verify reports whether m ≤ bound and m·G = M.
func verify(M *curve.RistrettoPoint, m, bound uint64) bool {
	if m > bound {
		return false
	}
	var p curve.RistrettoPoint
	p.MulBasepoint(curve.RISTRETTO_BASEPOINT_TABLE, scalar.NewFromUint64(m))
	return p.Equal(M) == 1
}

// The giant and baby steps run on the Edwards curve behind ristretto255,
// with circl's field arithmetic, because normalising a batch of points
// needs one field inversion where ristretto encodings need one inverse
// square root per point, and curve25519-voi exposes neither coordinates
// nor field elements.
//
// φ(P) = 4·P_E, where P_E is the Edwards point the ristretto255 decoder
// yields for P's encoding, is an injective homomorphism from ristretto255
// to the prime-order subgroup: P_E is determined up to a 4-torsion point,
// which the factor 4 removes. There a point has one affine form.

// ext is a point in extended coordinates (X:Y:Z:T), x = X/Z, y = Y/Z,
// xy = T/Z, on −x² + y² = 1 + d·x²·y².
type ext struct{ X, Y, Z, T fp.Elt }

// niels is an affine point as (y+x, y−x, 2d·x·y).
type niels struct{ ypx, ymx, xy2d fp.Elt }

var (
	feOne = fp.Elt{1}
	feD   = func() fp.Elt { // d = −121665/121666
		var n, dd fp.Elt
		binary.LittleEndian.PutUint64(n[:], 121666)
		fp.Inv(&dd, &n)
		binary.LittleEndian.PutUint64(n[:], 121665)
		fp.Mul(&dd, &dd, &n)
		fp.Neg(&dd, &dd)
		fp.Modp(&dd)
		return dd
	}()
	fe2D = func() fp.Elt {
		var dd fp.Elt
		fp.Add(&dd, &feD, &feD)
		return dd
	}()
)

func extIdentity() ext { return ext{Y: feOne, Z: feOne} }

// mulG returns φ(m·G).
func mulG(m uint64) ext {
	var p curve.RistrettoPoint
	p.MulBasepoint(curve.RISTRETTO_BASEPOINT_TABLE, scalar.NewFromUint64(m))
	e, ok := phi(&p)
	if !ok {
		panic("elgamal: ristretto255 re-decoding failed")
	}
	return e
}

// phi returns φ(P). It fails only if voi's encoder and this decoder
// disagree, which the tests rule out.
func phi(P *curve.RistrettoPoint) (ext, bool) {
	var b [PointSize]byte
	encodePoint(P, &b)
	e, ok := decodeRistretto(&b)
	if !ok {
		return ext{}, false
	}
	e.double()
	e.double()
	return e, true
}

// decodeRistretto decodes a canonical ristretto255 encoding (RFC 9496,
// section 4.3.1) to an Edwards point. Its input comes from voi's encoder,
// so it skips the canonicity checks and only reports a non-square ratio.
func decodeRistretto(b *[PointSize]byte) (ext, bool) {
	var s, ss, u1, u2, u2sq, v, w, inv, denX, denY, x, y fp.Elt
	copy(s[:], b[:])
	fp.Sqr(&ss, &s)
	fp.Sub(&u1, &feOne, &ss)
	fp.Add(&u2, &feOne, &ss)
	fp.Sqr(&u2sq, &u2)
	fp.Sqr(&v, &u1)
	fp.Mul(&v, &v, &feD)
	fp.Neg(&v, &v)
	fp.Sub(&v, &v, &u2sq) // v = −d·u1² − u2²
	fp.Mul(&w, &v, &u2sq)
	if !fp.InvSqrt(&inv, &feOne, &w) { // ±1/√(v·u2²)
		return ext{}, false
	}
	fp.Mul(&denX, &inv, &u2)
	fp.Mul(&denY, &inv, &denX)
	fp.Mul(&denY, &denY, &v)
	fp.Add(&x, &s, &s)
	fp.Mul(&x, &x, &denX)
	fp.Modp(&x)
	if x[0]&1 == 1 { // x = |2s·den_x|
		fp.Neg(&x, &x)
	}
	fp.Mul(&y, &u1, &denY)
	e := ext{X: x, Y: y, Z: feOne}
	fp.Mul(&e.T, &x, &y)
	return e, true
}

// double sets p = 2p (dbl-2008-hwcd with a = −1).
func (p *ext) double() {
	var a, b, c, e, f, g, h fp.Elt
	fp.Sqr(&a, &p.X)
	fp.Sqr(&b, &p.Y)
	fp.Sqr(&c, &p.Z)
	fp.Add(&c, &c, &c)
	fp.Add(&e, &p.X, &p.Y)
	fp.Sqr(&e, &e)
	fp.Sub(&e, &e, &a)
	fp.Sub(&e, &e, &b) // E = 2XY
	fp.Sub(&g, &b, &a) // G = −A + B
	fp.Sub(&f, &g, &c) // F = G − C
	fp.Add(&h, &a, &b)
	fp.Neg(&h, &h) // H = −A − B
	fp.Mul(&p.X, &e, &f)
	fp.Mul(&p.Y, &g, &h)
	fp.Mul(&p.T, &e, &h)
	fp.Mul(&p.Z, &f, &g)
}

// toNiels returns p's affine form. One inversion: for constants only.
func toNiels(p ext) niels {
	var zi, x, y fp.Elt
	fp.Inv(&zi, &p.Z)
	fp.Mul(&x, &p.X, &zi)
	fp.Mul(&y, &p.Y, &zi)
	var n niels
	fp.Add(&n.ypx, &y, &x)
	fp.Sub(&n.ymx, &y, &x)
	fp.Mul(&n.xy2d, &x, &y)
	fp.Mul(&n.xy2d, &n.xy2d, &fe2D)
	return n
}

// add sets p = p + q (madd-2008-hwcd-3 with a = −1).
func (p *ext) add(q *niels) {
	var a, b, c, d, e, f, g, h fp.Elt
	fp.Sub(&a, &p.Y, &p.X)
	fp.Mul(&a, &a, &q.ymx)
	fp.Add(&b, &p.Y, &p.X)
	fp.Mul(&b, &b, &q.ypx)
	fp.Mul(&c, &p.T, &q.xy2d)
	fp.Add(&d, &p.Z, &p.Z)
	fp.Sub(&e, &b, &a)
	fp.Sub(&f, &d, &c)
	fp.Add(&g, &d, &c)
	fp.Add(&h, &b, &a)
	fp.Mul(&p.X, &e, &f)
	fp.Mul(&p.Y, &g, &h)
	fp.Mul(&p.T, &e, &h)
	fp.Mul(&p.Z, &f, &g)
}

// sub sets p = p − q: the addition of −q = (y−x, y+x, −2d·x·y).
func (p *ext) sub(q *niels) {
	var a, b, c, d, e, f, g, h fp.Elt
	fp.Sub(&a, &p.Y, &p.X)
	fp.Mul(&a, &a, &q.ypx)
	fp.Add(&b, &p.Y, &p.X)
	fp.Mul(&b, &b, &q.ymx)
	fp.Mul(&c, &p.T, &q.xy2d)
	fp.Add(&d, &p.Z, &p.Z)
	fp.Sub(&e, &b, &a)
	fp.Add(&f, &d, &c)
	fp.Sub(&g, &d, &c)
	fp.Add(&h, &b, &a)
	fp.Mul(&p.X, &e, &f)
	fp.Mul(&p.Y, &g, &h)
	fp.Mul(&p.T, &e, &h)
	fp.Mul(&p.Z, &f, &g)
}

// affineKeys sets keys[i] to the low 64 bits of the affine y of pts[i],
// with one inversion for the batch (Montgomery's trick). scratch holds at
// least len(pts) elements.
func affineKeys(pts []ext, keys []uint64, scratch []fp.Elt) {
	acc := feOne
	for i := range pts {
		scratch[i] = acc // Z_0 ⋯ Z_{i−1}
		fp.Mul(&acc, &acc, &pts[i].Z)
	}
	var inv, zi, y fp.Elt
	fp.Inv(&inv, &acc) // 1/(Z_0 ⋯ Z_{n−1})
	for i := len(pts) - 1; i >= 0; i-- {
		fp.Mul(&zi, &inv, &scratch[i])
		fp.Mul(&inv, &inv, &pts[i].Z)
		fp.Mul(&y, &pts[i].Y, &zi)
		fp.Modp(&y)
		keys[i] = binary.LittleEndian.Uint64(y[:8])
	}
}
