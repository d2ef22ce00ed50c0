package elgamal

import (
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/kura-cc/kura/mpc/internal/parallel"
	"io"
	"log/slog"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// ErrElGamal is the root of every error this package returns.
var ErrElGamal = errors.New("elgamal")

var (
	// ErrMalformed reports an encoding of the wrong length or with a bad
	// count.
	ErrMalformed = fmt.Errorf("%w: malformed encoding", ErrElGamal)
	// ErrTooLarge reports a list longer than the caller's or the package's
	// cap ([MaxCiphertexts]).
	ErrTooLarge = fmt.Errorf("%w: too many ciphertexts", ErrElGamal)
	// ErrElement reports a non-canonical encoding or the identity where a
	// group element other than the identity is required.
	ErrElement = fmt.Errorf("%w: invalid group element", ErrElGamal)
	// ErrKey reports a joint key that would not hide plaintexts: the two
	// shares are equal, or they cancel out.
	ErrKey = fmt.Errorf("%w: invalid joint key", ErrElGamal)
	// ErrPlaintext reports a plaintext above [MaxPlaintext].
	ErrPlaintext = fmt.Errorf("%w: plaintext out of range", ErrElGamal)
	// ErrBound reports a discrete-log bound above [MaxBound].
	ErrBound = fmt.Errorf("%w: bound too large", ErrElGamal)
	// ErrOutOfRange reports a decrypted value outside [0, bound]: the sum
	// exceeds the bound the caller chose, or the partial decryptions do not
	// belong to this ciphertext and key.
	ErrOutOfRange = fmt.Errorf("%w: plaintext outside the bound", ErrElGamal)
	// ErrClosed reports a [KeyShare] used after Close.
	ErrClosed = fmt.Errorf("%w: key share closed", ErrElGamal)
)

const (
	// PointSize is the size of an encoded group element: a public share, a
	// partial decryption, or half a ciphertext.
	PointSize = 32
	// CiphertextSize is the size of an encoded ciphertext, C1 || C2.
	CiphertextSize = 2 * PointSize
	// MaxPlaintext is the largest value Encrypt accepts.
	MaxPlaintext = 1 << 40
	// MaxCiphertexts caps the count of an encoded list of ciphertexts
	// (1 GiB of ciphertexts), whatever the caller's own cap.
	MaxCiphertexts = 1 << 24
)

// KeyShare is one party's secret share sk_i of the joint decryption key,
// with its public share P_i = sk_i·G. It prints and logs as REDACTED. A
// KeyShare is safe for concurrent use, except Close.
type KeyShare struct {
	sk     scalar.Scalar
	pub    PublicShare
	closed bool
}

// PublicShare is the 32-byte canonical ristretto255 encoding of a party's
// public share P_i = sk_i·G.
type PublicShare [PointSize]byte

// Partial is the 32-byte canonical ristretto255 encoding of one party's
// partial decryption sk_i·C1 of a ciphertext.
type Partial [PointSize]byte

// NewKeyShare draws a secret share from crypto/rand: 64 uniform bytes
// reduced modulo the group order, redrawn in the (negligible) case of zero.
func NewKeyShare() (*KeyShare, error) {
	k := new(KeyShare)
	for {
		if err := randomScalar(&k.sk); err != nil {
			return nil, fmt.Errorf("elgamal: key share: %w", err)
		}
		if k.sk.Equal(scalar.New()) == 0 {
			break
		}
	}
	var p curve.RistrettoPoint
	p.MulBasepoint(curve.RISTRETTO_BASEPOINT_TABLE, &k.sk)
	encodePoint(&p, (*[PointSize]byte)(&k.pub))
	return k, nil
}

// Public returns the public share P_i = sk_i·G.
func (k *KeyShare) Public() PublicShare { return k.pub }

// PartialDecrypt returns sk_i·C1, this party's share of the decryption of
// c. It refuses a ciphertext whose C1 is the identity (an unrandomised
// [Sum] of nothing, for example): its partial would be the identity, which
// [Decrypt] refuses. Whoever holds the other share's partial and c learns
// c's plaintext.
func (k *KeyShare) PartialDecrypt(c *Ciphertext) (Partial, error) {
	if k.closed {
		return Partial{}, ErrClosed
	}
	c1, _ := c.points()
	if c1.IsIdentity() {
		return Partial{}, ErrElement
	}
	var d curve.RistrettoPoint
	d.Mul(c1, &k.sk)
	var out Partial
	encodePoint(&d, (*[PointSize]byte)(&out))
	return out, nil
}

// Close zeroises the secret share, best effort: copies the Go runtime or
// the group library made on the stack are out of reach. The KeyShare
// cannot decrypt afterwards.
func (k *KeyShare) Close() {
	k.sk.Zero()
	k.closed = true
}

// String returns "REDACTED".
func (k *KeyShare) String() string { return "REDACTED" }

// GoString returns "REDACTED".
func (k *KeyShare) GoString() string { return "REDACTED" }

// LogValue logs the key share as REDACTED.
func (k *KeyShare) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// ParsePublicShare parses a public share: exactly [PointSize] bytes, the
// canonical encoding of a group element other than the identity.
func ParsePublicShare(b []byte) (PublicShare, error) {
	var s PublicShare
	if len(b) != PointSize {
		return s, ErrMalformed
	}
	copy(s[:], b)
	var p curve.RistrettoPoint
	if err := decodePoint((*[PointSize]byte)(&s), &p); err != nil {
		return PublicShare{}, err
	}
	return s, nil
}

// ParsePartial parses a partial decryption: exactly [PointSize] bytes, the
// canonical encoding of a group element other than the identity.
func ParsePartial(b []byte) (Partial, error) {
	s, err := ParsePublicShare(b)
	return Partial(s), err
}

// PublicKey is the joint public key P = P_A + P_B of two parties, with a
// precomputed table of multiples of P for encryption (about 45 KiB). It is
// safe for concurrent use.
type PublicKey struct {
	p     curve.RistrettoPoint
	table *curve.RistrettoBasepointTable // nil only in benchmarks
}

// JointKey returns the joint public key P_A + P_B. It refuses shares that
// do not decode, equal shares (a party echoing the other's share would
// leave the other able to decrypt alone) and shares that cancel out (P
// would be the identity and ciphertexts would carry m·G in the clear).
func JointKey(a, b PublicShare) (*PublicKey, error) {
	if a == b {
		return nil, ErrKey
	}
	var pa, pb curve.RistrettoPoint
	if err := decodePoint((*[PointSize]byte)(&a), &pa); err != nil {
		return nil, err
	}
	if err := decodePoint((*[PointSize]byte)(&b), &pb); err != nil {
		return nil, err
	}
	pk := new(PublicKey)
	pk.p.Add(&pa, &pb)
	if pk.p.IsIdentity() {
		return nil, ErrKey
	}
	pk.table = curve.NewRistrettoBasepointTable(&pk.p)
	return pk, nil
}

// Encrypt returns a fresh encryption (r·G, m·G + r·P) of m under pk, with r
// drawn from crypto/rand. It refuses m > [MaxPlaintext].
func (pk *PublicKey) Encrypt(m uint64) (Ciphertext, error) {
	var c Ciphertext
	if m > MaxPlaintext {
		return c, ErrPlaintext
	}
	var r scalar.Scalar
	defer r.Zero()
	if err := randomScalar(&r); err != nil {
		return c, fmt.Errorf("elgamal: encrypt: %w", err)
	}
	pk.encrypt(&c, m, &r)
	return c, nil
}

// EncryptMany encrypts every value of ms under pk, on workers goroutines
// (GOMAXPROCS when workers < 1), each taking blocks of values as it frees
// up. It refuses the whole list if one value is above [MaxPlaintext].
func (pk *PublicKey) EncryptMany(ms []uint64, workers int) ([]Ciphertext, error) {
	for _, m := range ms {
		if m > MaxPlaintext {
			return nil, ErrPlaintext
		}
	}
	out := make([]Ciphertext, len(ms))
	err := parallel.For(workers, len(ms), func(lo, hi int) error {
		// One read of crypto/rand per block.
		buf := make([]byte, (hi-lo)*64)
		defer clear(buf)
		if _, err := io.ReadFull(rand.Reader, buf); err != nil {
			return fmt.Errorf("elgamal: encrypt: %w", err)
		}
		var r scalar.Scalar
		defer r.Zero()
		for i := lo; i < hi; i++ {
			if _, err := r.SetBytesModOrderWide(buf[(i-lo)*64 : (i-lo+1)*64]); err != nil {
				panic("elgamal: scalar reduction failed")
			}
			pk.encrypt(&out[i], ms[i], &r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Rerandomize returns c + Encrypt(0): a ciphertext of the same plaintext
// that cannot be linked to c by anyone who lacks both key shares. Use it on
// a sum before sending it to the party whose ciphertexts went into it.
func (pk *PublicKey) Rerandomize(c *Ciphertext) (Ciphertext, error) {
	z, err := pk.Encrypt(0)
	if err != nil {
		return Ciphertext{}, err
	}
	var out Ciphertext
	out.Add(c, &z)
	return out, nil
}

// encrypt sets c = (r·G, m·G + r·P). Every multiplication is constant
// time: m is the encrypting party's secret as much as r is.
func (pk *PublicKey) encrypt(c *Ciphertext, m uint64, r *scalar.Scalar) {
	c.c1.MulBasepoint(curve.RISTRETTO_BASEPOINT_TABLE, r)
	var mg curve.RistrettoPoint
	mg.MulBasepoint(curve.RISTRETTO_BASEPOINT_TABLE, scalar.NewFromUint64(m))
	if pk.table != nil {
		c.c2.MulBasepoint(pk.table, r)
	} else {
		c.c2.Mul(&pk.p, r)
	}
	c.c2.Add(&c.c2, &mg)
	c.set = true
}

// Ciphertext is an exponential ElGamal ciphertext (C1, C2) = (r·G,
// m·G + r·P). The zero value is the trivial encryption of 0, (identity,
// identity): a starting point for [Ciphertext.Add] that must be
// rerandomised before it can be encoded or sent.
type Ciphertext struct {
	c1, c2 curve.RistrettoPoint
	set    bool // false: both components are the identity
}

// identity is the identity point, read only.
var identity = curve.NewRistrettoPoint()

// points returns c's components, the identity for the zero value.
func (c *Ciphertext) points() (c1, c2 *curve.RistrettoPoint) {
	if !c.set {
		return identity, identity
	}
	return &c.c1, &c.c2
}

// Add sets c = a + b, an encryption of the sum of their plaintexts (modulo
// the group order), and returns c. Sums of ciphertexts from [Encrypt] and
// [PublicKey.EncryptMany] stay exact up to 2^24 of them.
func (c *Ciphertext) Add(a, b *Ciphertext) *Ciphertext {
	a1, a2 := a.points()
	b1, b2 := b.points()
	c.c1.Add(a1, b1)
	c.c2.Add(a2, b2)
	c.set = true
	return c
}

// Sum returns the sum of cs; the zero Ciphertext (an unrandomised
// encryption of 0) when cs is empty.
func Sum(cs []Ciphertext) Ciphertext {
	var s Ciphertext
	for i := range cs {
		s.Add(&s, &cs[i])
	}
	return s
}

// Decrypt returns the plaintext of c from both parties' partial
// decryptions (in either order), solving M = C2 − D_A − D_B = m·G for
// m ∈ [0, dl.Bound()] with dl. It returns [ErrOutOfRange] when no such m
// exists: the plaintext is above the bound, or a partial does not belong
// to c. Its running time depends on m.
func Decrypt(c *Ciphertext, a, b Partial, dl *DLog) (uint64, error) {
	var da, db curve.RistrettoPoint
	if err := decodePoint((*[PointSize]byte)(&a), &da); err != nil {
		return 0, err
	}
	if err := decodePoint((*[PointSize]byte)(&b), &db); err != nil {
		return 0, err
	}
	_, c2 := c.points()
	var m curve.RistrettoPoint
	m.Sub(c2, &da)
	m.Sub(&m, &db)
	return dl.solve(&m)
}

// randomScalar sets s to 64 bytes from crypto/rand reduced modulo the
// group order.
func randomScalar(s *scalar.Scalar) error {
	var buf [64]byte
	defer clear(buf[:])
	if _, err := io.ReadFull(rand.Reader, buf[:]); err != nil {
		return err
	}
	if _, err := s.SetBytesModOrderWide(buf[:]); err != nil {
		panic("elgamal: scalar reduction failed")
	}
	return nil
}
