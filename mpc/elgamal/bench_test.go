package elgamal

import (
	"fmt"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// perElement reports the time per element of a loop over n elements.
func perElement(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/element")
}

// BenchmarkEncrypt compares, per element, encryption with both tables (G
// and P), with G's table only, and with variable-base multiplications
// only, against one plain voi variable-base multiplication (mul/voi), the
// unit the ratios are read in. encryptMany/workers=N adds randomness,
// allocation and the parallel split; encode and parse are the list
// encoding of one ciphertext.
func BenchmarkEncrypt(b *testing.B) {
	_, _, pk := parties(b)
	var r scalar.Scalar
	if err := randomScalar(&r); err != nil {
		b.Fatal(err)
	}
	b.Run("mul/voi", func(b *testing.B) {
		p := pk.p
		for b.Loop() {
			p.Mul(&p, &r)
		}
	})
	b.Run("mulBasepoint/voi", func(b *testing.B) {
		var p curve.RistrettoPoint
		for b.Loop() {
			p.MulBasepoint(curve.RISTRETTO_BASEPOINT_TABLE, &r)
		}
	})
	b.Run("tableP/build", func(b *testing.B) {
		for b.Loop() {
			curve.NewRistrettoBasepointTable(&pk.p)
		}
	})
	var c Ciphertext
	b.Run("encrypt/tables", func(b *testing.B) {
		for b.Loop() {
			pk.encrypt(&c, 123456, &r)
		}
	})
	b.Run("encrypt/noTableP", func(b *testing.B) {
		noTable := &PublicKey{p: pk.p}
		for b.Loop() {
			noTable.encrypt(&c, 123456, &r)
		}
	})
	b.Run("encrypt/noTables", func(b *testing.B) {
		m := scalar.NewFromUint64(123456)
		var mg curve.RistrettoPoint
		for b.Loop() {
			c.c1.Mul(curve.RISTRETTO_BASEPOINT_POINT, &r)
			mg.Mul(curve.RISTRETTO_BASEPOINT_POINT, m)
			c.c2.Mul(&pk.p, &r)
			c.c2.Add(&c.c2, &mg)
		}
	})
	const n = 4096
	ms := make([]uint64, n)
	for i := range ms {
		ms[i] = uint64(i) * 977
	}
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("encryptMany/workers=%d", w), func(b *testing.B) {
			for b.Loop() {
				if _, err := pk.EncryptMany(ms, w); err != nil {
					b.Fatal(err)
				}
			}
			perElement(b, n)
		})
	}
	cs, err := pk.EncryptMany(ms, 0)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := AppendCiphertexts(nil, cs, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode/workers=1", func(b *testing.B) {
		buf := make([]byte, 0, len(enc))
		for b.Loop() {
			if _, err := AppendCiphertexts(buf, cs, 1); err != nil {
				b.Fatal(err)
			}
		}
		perElement(b, n)
	})
	b.Run("parse/workers=1", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseCiphertexts(enc, n, 1); err != nil {
				b.Fatal(err)
			}
		}
		perElement(b, n)
	})
	b.Run("add", func(b *testing.B) {
		var s Ciphertext
		for b.Loop() {
			s.Add(&s, &cs[1])
		}
	})
	b.Run("rerandomize", func(b *testing.B) {
		for b.Loop() {
			if _, err := pk.Rerandomize(&cs[1]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPartialDecrypt measures sk·C1 and its encoding.
func BenchmarkPartialDecrypt(b *testing.B) {
	a, _, pk := parties(b)
	c, err := pk.Encrypt(1)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := a.PartialDecrypt(&c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDLog measures building the baby-step table and solving for
// bounds 2^32 and 2^40: "worst" solves m = bound (every giant step),
// "random" a uniform m, and "outOfRange" fails after every giant step.
func BenchmarkDLog(b *testing.B) {
	for _, bits := range []uint{32, 40} {
		bound := uint64(1) << bits
		b.Run(fmt.Sprintf("build/2^%d", bits), func(b *testing.B) {
			for b.Loop() {
				if _, err := NewDLog(bound); err != nil {
					b.Fatal(err)
				}
			}
		})
		dl := newDLog(b, bound)
		b.Run(fmt.Sprintf("solve/2^%d/worst", bits), func(b *testing.B) {
			m := mulPoint(bound)
			for b.Loop() {
				if got, err := dl.solve(m); err != nil || got != bound {
					b.Fatal(got, err)
				}
			}
		})
		b.Run(fmt.Sprintf("solve/2^%d/random", bits), func(b *testing.B) {
			var x uint64 = 0x9e3779b97f4a7c15
			for b.Loop() {
				x = x*6364136223846793005 + 1442695040888963407
				m := x % (bound + 1)
				if got, err := dl.solve(mulPoint(m)); err != nil || got != m {
					b.Fatal(got, err)
				}
			}
		})
		b.Run(fmt.Sprintf("solve/2^%d/small", bits), func(b *testing.B) {
			m := mulPoint(1000)
			for b.Loop() {
				if _, err := dl.solve(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
