package psi

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/oasisprotocol/curve25519-voi/curve"
)

// BenchmarkGroup compares, one element at a time on one core, the
// arithmetic this package runs on (voi) with circl's, which it used
// before: hash-to-group, variable-base multiplication, decoding, encoding,
// and the per-element work of hashBlind (hash, multiply, encode) and exp
// (decode, multiply, encode).
func BenchmarkGroup(b *testing.B) {
	g := group.Ristretto255
	dst := Config{Session: testSession(b)}.dst()
	id := phone(1234)
	k, err := newKey()
	if err != nil {
		b.Fatal(err)
	}
	ks := voiScalar(k)
	var e Element
	encode(g.HashToElement(id, dst), &e)

	b.Run("hash/circl", func(b *testing.B) {
		for b.Loop() {
			g.HashToElement(id, dst)
		}
	})
	b.Run("hash/voi", func(b *testing.B) {
		h := newHasher(dst)
		var p curve.RistrettoPoint
		for b.Loop() {
			h.hash(&p, id)
		}
	})
	b.Run("mul/circl", func(b *testing.B) {
		x := g.HashToElement(id, dst)
		for b.Loop() {
			x.Mul(x, k)
		}
	})
	b.Run("mul/voi", func(b *testing.B) {
		var p curve.RistrettoPoint
		newHasher(dst).hash(&p, id)
		for b.Loop() {
			p.Mul(&p, ks)
		}
	})
	b.Run("decode/circl", func(b *testing.B) {
		x := g.NewElement()
		for b.Loop() {
			if err := decode(&e, x); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/voi", func(b *testing.B) {
		var p curve.RistrettoPoint
		for b.Loop() {
			if err := decodePoint(&e, &p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/circl", func(b *testing.B) {
		x := g.HashToElement(id, dst)
		var out Element
		for b.Loop() {
			encode(x, &out)
		}
	})
	b.Run("encode/voi", func(b *testing.B) {
		var p curve.RistrettoPoint
		newHasher(dst).hash(&p, id)
		var out Element
		for b.Loop() {
			encodePoint(&p, &out)
		}
	})

	const n = 256
	ids := make([][]byte, n)
	for i := range ids {
		ids[i] = phone(i)
	}
	in, out := make([]Element, n), make([]Element, n)
	hashBlind(1, dst, ids, k, in)
	b.Run("hashBlind/circl", func(b *testing.B) {
		x := g.NewElement()
		for b.Loop() {
			for i := range ids {
				x.Mul(g.HashToElement(ids[i], dst), k)
				encode(x, &out[i])
			}
		}
		perElement(b, n)
	})
	b.Run("hashBlind/voi", func(b *testing.B) {
		for b.Loop() {
			hashBlind(1, dst, ids, k, out)
		}
		perElement(b, n)
	})
	b.Run("exp/circl", func(b *testing.B) {
		x := g.NewElement()
		for b.Loop() {
			for i := range in {
				if err := decode(&in[i], x); err != nil {
					b.Fatal(err)
				}
				x.Mul(x, k)
				encode(x, &out[i])
			}
		}
		perElement(b, n)
	})
	b.Run("exp/voi", func(b *testing.B) {
		for b.Loop() {
			if err := exp(1, in, k, out); err != nil {
				b.Fatal(err)
			}
		}
		perElement(b, n)
	})
}

// perElement reports the time per element of a loop over n elements.
func perElement(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/element")
}

// BenchmarkDistinct measures the duplicate check B runs on a 1M request.
func BenchmarkDistinct(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		list := randomElements(b, n) // the check needs no valid points
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				if err := distinct(list); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// randomElements returns n random 32-byte strings, not group elements.
func randomElements(b *testing.B, n int) []Element {
	list := make([]Element, n)
	for i := range list {
		if _, err := rand.Read(list[i][:]); err != nil {
			b.Fatal(err)
		}
	}
	return list
}

// BenchmarkMatch compares ways A could match 1M reblinded elements against
// 1M of B's: the map Finish builds, and sorting B's list then searching.
func BenchmarkMatch(b *testing.B) {
	const n = 1_000_000
	theirs, reblinded := randomElements(b, n), randomElements(b, n)
	copy(reblinded[n/2:], theirs[:n/2])
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			index := make(map[Element]struct{}, n)
			for j := range theirs {
				index[theirs[j]] = struct{}{}
			}
			size := 0
			for i := range reblinded {
				if _, ok := index[reblinded[i]]; ok {
					size++
				}
			}
			if size != n/2 {
				b.Fatal(size)
			}
		}
	})
	b.Run("sort", func(b *testing.B) {
		cmp := func(x, y Element) int { return bytes.Compare(x[:], y[:]) }
		for b.Loop() {
			sorted := slices.Clone(theirs)
			slices.SortFunc(sorted, cmp)
			size := 0
			for i := range reblinded {
				if _, ok := slices.BinarySearchFunc(sorted, reblinded[i], cmp); ok {
					size++
				}
			}
			if size != n/2 {
				b.Fatal(size)
			}
		}
	})
}
