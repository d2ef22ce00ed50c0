package elgamal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
)

// parties returns two key shares and their joint key.
func parties(t testing.TB) (a, b *KeyShare, pk *PublicKey) {
	t.Helper()
	var err error
	if a, err = NewKeyShare(); err != nil {
		t.Fatal(err)
	}
	if b, err = NewKeyShare(); err != nil {
		t.Fatal(err)
	}
	if pk, err = JointKey(a.Public(), b.Public()); err != nil {
		t.Fatal(err)
	}
	return a, b, pk
}

// decrypt decrypts c with both shares.
func decrypt(t testing.TB, a, b *KeyShare, c *Ciphertext, dl *DLog) (uint64, error) {
	t.Helper()
	da, err := a.PartialDecrypt(c)
	if err != nil {
		t.Fatal(err)
	}
	db, err := b.PartialDecrypt(c)
	if err != nil {
		t.Fatal(err)
	}
	return Decrypt(c, da, db, dl)
}

func newDLog(t testing.TB, bound uint64) *DLog {
	t.Helper()
	dl, err := NewDLog(bound)
	if err != nil {
		t.Fatal(err)
	}
	return dl
}

func TestEncryptDecrypt(t *testing.T) {
	a, b, pk := parties(t)
	dl := newDLog(t, MaxPlaintext)
	ms := []uint64{0, 1, 2, 1000, 1<<20 + 7, MaxPlaintext - 1, MaxPlaintext}
	for range 5 {
		ms = append(ms, mrand.Uint64N(MaxPlaintext+1))
	}
	cs, err := pk.EncryptMany(ms, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		got, err := decrypt(t, a, b, &cs[i], dl)
		if err != nil || got != m {
			t.Errorf("Decrypt(Encrypt(%d)) = %d, %v", m, got, err)
		}
		// The partials commute.
		da, _ := a.PartialDecrypt(&cs[i])
		db, _ := b.PartialDecrypt(&cs[i])
		if got, err := Decrypt(&cs[i], db, da, dl); err != nil || got != m {
			t.Errorf("Decrypt with swapped partials = %d, %v", got, err)
		}
	}
	c, err := pk.Encrypt(42)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decrypt(t, a, b, &c, dl); err != nil || got != 42 {
		t.Errorf("Decrypt(Encrypt(42)) = %d, %v", got, err)
	}
}

// TestProtocol runs the intersection-sum flow the package is built for: B
// encrypts its values, A sums B's matched entries per group, rerandomises
// and sends the sums, B partially decrypts them, A decrypts.
func TestProtocol(t *testing.T) {
	a, b, _ := parties(t)
	pkA, err := JointKey(a.Public(), b.Public()) // A's view
	if err != nil {
		t.Fatal(err)
	}
	pkB, err := JointKey(b.Public(), a.Public()) // B's view, shares swapped
	if err != nil {
		t.Fatal(err)
	}
	const n, maxValue = 3000, 1000
	values := make([]uint64, n)
	for i := range values {
		values[i] = mrand.Uint64N(maxValue + 1)
	}
	cs, err := pkB.EncryptMany(values, 0)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := AppendCiphertexts(nil, cs, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseCiphertexts(wire, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A: groups of matched rows, one empty.
	groups := [][]int{{}, {7}, {1, 2, 3}}
	var big []int
	for i := 10; i < n; i += 3 {
		big = append(big, i)
	}
	groups = append(groups, big)
	sums := make([]Ciphertext, len(groups))
	want := make([]uint64, len(groups))
	for g, rows := range groups {
		var s Ciphertext
		for _, i := range rows {
			s.Add(&s, &got[i])
			want[g] += values[i]
		}
		if sums[g], err = pkA.Rerandomize(&s); err != nil {
			t.Fatal(err)
		}
	}
	req, err := AppendCiphertexts(nil, sums, 0)
	if err != nil {
		t.Fatal(err)
	}
	// B.
	atB, err := ParseCiphertexts(req, 16, 1)
	if err != nil {
		t.Fatal(err)
	}
	partials := make([]Partial, len(atB))
	for i := range atB {
		if partials[i], err = b.PartialDecrypt(&atB[i]); err != nil {
			t.Fatal(err)
		}
	}
	// A.
	dl := newDLog(t, n*maxValue)
	for g := range sums {
		da, err := a.PartialDecrypt(&sums[g])
		if err != nil {
			t.Fatal(err)
		}
		db, err := ParsePartial(partials[g][:])
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decrypt(&sums[g], da, db, dl)
		if err != nil || m != want[g] {
			t.Errorf("group %d: sum %d, %v; want %d", g, m, err, want[g])
		}
	}
}

func TestHomomorphism(t *testing.T) {
	a, b, pk := parties(t)
	dl := newDLog(t, 1<<32)
	ms := make([]uint64, 300)
	var want uint64
	for i := range ms {
		ms[i] = mrand.Uint64N(1 << 20)
		want += ms[i]
	}
	cs, err := pk.EncryptMany(ms, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := Sum(cs)
	if got, err := decrypt(t, a, b, &s, dl); err != nil || got != want {
		t.Errorf("Sum = %d, %v; want %d", got, err, want)
	}
	var acc Ciphertext // the zero value is an encryption of 0
	for i := range cs {
		acc.Add(&acc, &cs[i])
	}
	if got, err := decrypt(t, a, b, &acc, dl); err != nil || got != want {
		t.Errorf("Add chain = %d, %v; want %d", got, err, want)
	}
	var two Ciphertext
	two.Add(&cs[0], &cs[1])
	if got, err := decrypt(t, a, b, &two, dl); err != nil || got != ms[0]+ms[1] {
		t.Errorf("Add = %d, %v; want %d", got, err, ms[0]+ms[1])
	}
	// An empty sum cannot be partially decrypted or encoded until it is
	// rerandomised, after which it decrypts to 0.
	empty := Sum(nil)
	if _, err := a.PartialDecrypt(&empty); !errors.Is(err, ErrElement) {
		t.Errorf("PartialDecrypt(Sum(nil)): %v, want ErrElement", err)
	}
	if _, err := empty.MarshalBinary(); !errors.Is(err, ErrElement) {
		t.Errorf("MarshalBinary(Sum(nil)): %v, want ErrElement", err)
	}
	r, err := pk.Rerandomize(&empty)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decrypt(t, a, b, &r, dl); err != nil || got != 0 {
		t.Errorf("Rerandomize(Sum(nil)) = %d, %v; want 0", got, err)
	}
}

func TestRerandomize(t *testing.T) {
	a, b, pk := parties(t)
	dl := newDLog(t, 1<<20)
	c, err := pk.Encrypt(777)
	if err != nil {
		t.Fatal(err)
	}
	r, err := pk.Rerandomize(&c)
	if err != nil {
		t.Fatal(err)
	}
	ce, _ := c.MarshalBinary()
	re, _ := r.MarshalBinary()
	if bytes.Equal(ce[:PointSize], re[:PointSize]) || bytes.Equal(ce[PointSize:], re[PointSize:]) {
		t.Errorf("rerandomised ciphertext shares a component:\n%x\n%x", ce, re)
	}
	if got, err := decrypt(t, a, b, &r, dl); err != nil || got != 777 {
		t.Errorf("Decrypt(Rerandomize(Encrypt(777))) = %d, %v", got, err)
	}
}

// TestOnePartial checks that one share does not decrypt: C2 − D_A, C2 −
// 2·D_A, and another ciphertext's partial all fall outside the bound.
func TestOnePartial(t *testing.T) {
	a, b, pk := parties(t)
	dl := newDLog(t, 1<<32)
	c, err := pk.Encrypt(5)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.PartialDecrypt(&c)
	var pa curve.RistrettoPoint
	if err := decodePoint((*[PointSize]byte)(&da), &pa); err != nil {
		t.Fatal(err)
	}
	var m curve.RistrettoPoint
	m.Sub(&c.c2, &pa)
	if got, err := dl.solve(&m); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("C2 − D_A solves to %d, %v; want ErrOutOfRange", got, err)
	}
	if got, err := Decrypt(&c, da, da, dl); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Decrypt(D_A, D_A) = %d, %v; want ErrOutOfRange", got, err)
	}
	other, _ := pk.Encrypt(5)
	dbOther, _ := b.PartialDecrypt(&other)
	if got, err := Decrypt(&c, da, dbOther, dl); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Decrypt with another ciphertext's partial = %d, %v; want ErrOutOfRange", got, err)
	}
}

func TestOutOfRange(t *testing.T) {
	a, b, pk := parties(t)
	const bound = 100_000
	dl := newDLog(t, bound)
	for _, tc := range []struct {
		m   uint64
		err error
	}{
		{0, nil}, {bound, nil}, {bound + 1, ErrOutOfRange}, {bound * 3, ErrOutOfRange}, {MaxPlaintext, ErrOutOfRange},
	} {
		c, err := pk.Encrypt(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decrypt(t, a, b, &c, dl)
		if !errors.Is(err, tc.err) || (err == nil && got != tc.m) {
			t.Errorf("m = %d: %d, %v; want %v", tc.m, got, err, tc.err)
		}
	}
}

func TestDLog(t *testing.T) {
	for _, bound := range []uint64{0, 1, 2, 3, 4, 5, 8, 9, 10, 99, 100, 1000, 1 << 16, 1 << 32, 1<<32 + 12345} {
		t.Run(fmt.Sprint(bound), func(t *testing.T) {
			dl := newDLog(t, bound)
			if dl.Bound() != bound {
				t.Fatalf("Bound() = %d", dl.Bound())
			}
			ms := map[uint64]bool{bound: true, bound + 1: true, bound + dl.s: true}
			for _, m := range []uint64{0, 1, dl.t - 1, dl.t, dl.t + 1, dl.s - 1, dl.s, dl.s + 1, 2*dl.s + dl.t, bound - 1} {
				ms[m] = true
			}
			if bound < 300 {
				for m := range bound + 5 {
					ms[m] = true
				}
			}
			for range 20 {
				ms[mrand.Uint64N(bound+1)] = true
			}
			for m := range ms {
				if m > bound+dl.s+10 { // bound − 1 wrapped
					continue
				}
				got, err := dl.solve(mulPoint(m))
				if m <= bound && (err != nil || got != m) {
					t.Errorf("solve(%d·G) = %d, %v", m, got, err)
				}
				if m > bound && !errors.Is(err, ErrOutOfRange) {
					t.Errorf("solve(%d·G) = %d, %v; want ErrOutOfRange", m, got, err)
				}
			}
		})
	}
	if _, err := NewDLog(MaxBound + 1); !errors.Is(err, ErrBound) {
		t.Errorf("NewDLog(MaxBound+1): %v, want ErrBound", err)
	}
}

// TestPhi checks this package's Edwards arithmetic against voi's: j·H by
// repeated addition, by doubling and by subtraction must map to the same
// affine points as φ(j·G).
func TestPhi(t *testing.T) {
	h := toNiels(mulG(1))
	cur := extIdentity()
	for j := range uint64(70) {
		want := mulG(j)
		if key(cur) != key(want) || !sameX(cur, want) {
			t.Fatalf("%d·H by addition differs from φ(%d·G)", j, j)
		}
		cur.add(&h)
	}
	d := mulG(21)
	d.double()
	if !samePoint(d, mulG(42)) {
		t.Error("2·φ(21·G) ≠ φ(42·G)")
	}
	s := mulG(100)
	s.sub(&h)
	if !samePoint(s, mulG(99)) {
		t.Error("φ(100·G) − H ≠ φ(99·G)")
	}
	// A random point of the group (not a multiple of G we know).
	var p, q curve.RistrettoPoint
	if _, err := p.SetRandom(nil); err != nil {
		t.Fatal(err)
	}
	q.Add(&p, curve.RISTRETTO_BASEPOINT_POINT)
	ep, ok1 := phi(&p)
	eq, ok2 := phi(&q)
	if !ok1 || !ok2 {
		t.Fatal("phi failed")
	}
	ep.add(&h)
	if !samePoint(ep, eq) {
		t.Error("φ(P) + φ(G) ≠ φ(P + G)")
	}
}

func mulPoint(m uint64) *curve.RistrettoPoint {
	var p curve.RistrettoPoint
	var s [32]byte
	for i := range 8 {
		s[i] = byte(m >> (8 * i))
	}
	sc := newScalar(s)
	p.MulBasepoint(curve.RISTRETTO_BASEPOINT_TABLE, sc)
	return &p
}

func key(p ext) uint64 {
	k := make([]uint64, 1)
	affineKeys([]ext{p}, k, make([]fpElt, 1))
	return k[0]
}

func TestPlaintextRefused(t *testing.T) {
	_, _, pk := parties(t)
	if _, err := pk.Encrypt(MaxPlaintext + 1); !errors.Is(err, ErrPlaintext) {
		t.Errorf("Encrypt(MaxPlaintext+1): %v", err)
	}
	if _, err := pk.EncryptMany([]uint64{1, 2, MaxPlaintext + 1, 3}, 0); !errors.Is(err, ErrPlaintext) {
		t.Errorf("EncryptMany with MaxPlaintext+1: %v", err)
	}
	if _, err := pk.Encrypt(^uint64(0)); !errors.Is(err, ErrPlaintext) {
		t.Errorf("Encrypt(2^64−1): %v", err)
	}
	if cs, err := pk.EncryptMany(nil, 0); err != nil || len(cs) != 0 {
		t.Errorf("EncryptMany(nil) = %d, %v", len(cs), err)
	}
}

func TestJointKey(t *testing.T) {
	a, b, _ := parties(t)
	if _, err := JointKey(a.Public(), a.Public()); !errors.Is(err, ErrKey) {
		t.Errorf("equal shares: %v, want ErrKey", err)
	}
	// −P_A cancels P_A.
	var pa, neg curve.RistrettoPoint
	pub := a.Public()
	if err := decodePoint((*[PointSize]byte)(&pub), &pa); err != nil {
		t.Fatal(err)
	}
	neg.Neg(&pa)
	var negShare PublicShare
	encodePoint(&neg, (*[PointSize]byte)(&negShare))
	if _, err := JointKey(a.Public(), negShare); !errors.Is(err, ErrKey) {
		t.Errorf("cancelling shares: %v, want ErrKey", err)
	}
	for _, h := range badEncodings {
		var bad PublicShare
		copy(bad[:], unhex(t, h))
		if _, err := JointKey(a.Public(), bad); !errors.Is(err, ErrElement) {
			t.Errorf("JointKey(%s): %v, want ErrElement", h, err)
		}
		if _, err := JointKey(bad, b.Public()); !errors.Is(err, ErrElement) {
			t.Errorf("JointKey(%s, ·): %v, want ErrElement", h, err)
		}
		if _, err := ParsePublicShare(bad[:]); !errors.Is(err, ErrElement) {
			t.Errorf("ParsePublicShare(%s): %v, want ErrElement", h, err)
		}
		if _, err := ParsePartial(bad[:]); !errors.Is(err, ErrElement) {
			t.Errorf("ParsePartial(%s): %v, want ErrElement", h, err)
		}
	}
	good := a.Public()
	if s, err := ParsePublicShare(good[:]); err != nil || s != good {
		t.Errorf("ParsePublicShare(good) = %x, %v", s, err)
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := ParsePublicShare(make([]byte, n)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParsePublicShare(%d bytes): %v, want ErrMalformed", n, err)
		}
	}
}

// badEncodings are RFC 9496's invalid encodings (section A.2), the identity
// first.
var badEncodings = []string{
	"0000000000000000000000000000000000000000000000000000000000000000",
	"00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
	"26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
	"4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
}

func unhex(t testing.TB, h string) []byte {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCiphertext(t *testing.T) {
	_, _, pk := parties(t)
	c, err := pk.Encrypt(3)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.MarshalBinary()
	if err != nil || len(enc) != CiphertextSize {
		t.Fatalf("MarshalBinary = %d bytes, %v", len(enc), err)
	}
	var d Ciphertext
	if err := d.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	if re, _ := d.MarshalBinary(); !bytes.Equal(re, enc) {
		t.Error("round trip changed the encoding")
	}
	for _, n := range []int{0, 1, 32, 63, 65, 128} {
		b := make([]byte, n)
		copy(b, enc)
		if err := d.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bytes: %v, want ErrMalformed", n, err)
		}
	}
	for _, h := range badEncodings {
		for half := range 2 {
			b := bytes.Clone(enc)
			copy(b[half*PointSize:], unhex(t, h))
			if err := d.UnmarshalBinary(b); !errors.Is(err, ErrElement) {
				t.Errorf("half %d = %s: %v, want ErrElement", half, h, err)
			}
		}
	}
	var zero Ciphertext
	if _, err := zero.MarshalBinary(); !errors.Is(err, ErrElement) {
		t.Errorf("zero Ciphertext: %v, want ErrElement", err)
	}
}

func TestParseCiphertexts(t *testing.T) {
	_, _, pk := parties(t)
	cs, err := pk.EncryptMany([]uint64{1, 2, 3}, 0)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := AppendCiphertexts([]byte("prefix"), cs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(enc[:6]) != "prefix" {
		t.Fatal("AppendCiphertexts overwrote its prefix")
	}
	enc = enc[6:]
	if len(enc) != 4+3*CiphertextSize {
		t.Fatalf("encoding is %d bytes", len(enc))
	}
	got, err := ParseCiphertexts(enc, 3, 0)
	if err != nil || len(got) != 3 {
		t.Fatalf("ParseCiphertexts = %d, %v", len(got), err)
	}
	if re, _ := AppendCiphertexts(nil, got, 1); !bytes.Equal(re, enc) {
		t.Error("round trip changed the encoding")
	}
	if empty, err := AppendCiphertexts(nil, nil, 0); err != nil || !bytes.Equal(empty, []byte{0, 0, 0, 0}) {
		t.Errorf("empty list = %x, %v", empty, err)
	}
	if got, err := ParseCiphertexts([]byte{0, 0, 0, 0}, 0, 0); err != nil || len(got) != 0 {
		t.Errorf("empty list parses to %d, %v", len(got), err)
	}
	badElem := bytes.Clone(enc)
	badElem[4+2*CiphertextSize+PointSize] ^= 0xff
	tooMany := bytes.Clone(enc)
	tooMany[0] = 0xff
	for _, tc := range []struct {
		name string
		b    []byte
		max  int
		err  error
	}{
		{"empty", nil, 0, ErrMalformed},
		{"short header", enc[:3], 0, ErrMalformed},
		{"truncated", enc[:len(enc)-1], 0, ErrMalformed},
		{"truncated entry", enc[:len(enc)-CiphertextSize], 0, ErrMalformed},
		{"trailing", append(bytes.Clone(enc), 0), 0, ErrMalformed},
		{"over max", enc, 2, ErrTooLarge},
		{"over MaxCiphertexts", tooMany, 0, ErrTooLarge},
		{"bad element", badElem, 0, ErrElement},
		{"identity", append(bytes.Clone(enc[:4+2*CiphertextSize]), make([]byte, CiphertextSize)...), 0, ErrElement},
	} {
		if _, err := ParseCiphertexts(tc.b, tc.max, 2); !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
		}
	}
	withZero := append(slices.Clone(cs), Ciphertext{})
	if _, err := AppendCiphertexts(nil, withZero, 0); !errors.Is(err, ErrElement) {
		t.Errorf("AppendCiphertexts with a zero Ciphertext: %v, want ErrElement", err)
	}
}

func TestClose(t *testing.T) {
	a, _, pk := parties(t)
	c, _ := pk.Encrypt(1)
	a.Close()
	if _, err := a.PartialDecrypt(&c); !errors.Is(err, ErrClosed) {
		t.Errorf("PartialDecrypt after Close: %v, want ErrClosed", err)
	}
	var zero [32]byte
	if b, _ := a.sk.MarshalBinary(); !bytes.Equal(b, zero[:]) {
		t.Error("Close left the secret share")
	}
}

func TestRedacted(t *testing.T) {
	a, _, _ := parties(t)
	sk, _ := a.sk.MarshalBinary()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("share", "k", a)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), buf.String()} {
		if !strings.Contains(s, "REDACTED") || strings.Contains(s, hex.EncodeToString(sk)) || strings.Contains(s, fmt.Sprint(sk)) {
			t.Errorf("key share printed as %q", s)
		}
	}
}

func TestErrorsWrapRoot(t *testing.T) {
	for _, err := range []error{ErrMalformed, ErrTooLarge, ErrElement, ErrKey, ErrPlaintext, ErrBound, ErrOutOfRange, ErrClosed} {
		if !errors.Is(err, ErrElGamal) {
			t.Errorf("%v does not wrap ErrElGamal", err)
		}
	}
}

// TestDLogConcurrent runs solves on one table from several goroutines (for
// the race detector).
func TestDLogConcurrent(t *testing.T) {
	dl := newDLog(t, 1<<24)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			m := uint64(g)*4_000_000 + 17
			got, err := dl.solve(mulPoint(m))
			if err == nil && got != m {
				err = fmt.Errorf("solve(%d·G) = %d", m, got)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
