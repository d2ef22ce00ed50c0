package privacy

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
)

// This file holds the exact samplers of Canonne, Kamath and Steinke, "The
// Discrete Gaussian for Differential Privacy" (NeurIPS 2020), Algorithms 1
// to 3. Every probability is a ratio of integers and every decision is a
// comparison of integers drawn uniformly from the random source: no floating
// point, no rounding, so each sampler's output has exactly its stated
// distribution given a uniform source.

// maxSteps bounds the loop iterations of one draw. Each loop of the
// samplers ends at each iteration with a probability bounded below by a
// constant (at least 1/2 for uniform, 1-1/e for the Bernoulli chains, and a
// constant for the Laplace and Gaussian rejections, see the paper), so a
// uniform source passes this bound with a negligible probability (far below
// 2^-1000). A source that does pass it (all zeros, all ones) is broken: the
// draw fails with ErrRandomness instead of spinning forever. Failing in that
// event changes the output distribution by no more than that probability.
const maxSteps = 1 << 16

// randomBuffer is how many bytes a sampler reads ahead from its source: a
// draw needs a few dozen, and crypto/rand costs a system call per read.
const randomBuffer = 64

var one, two = big.NewInt(1), big.NewInt(2)

// sampler draws from a uniform random source, counting its steps.
type sampler struct {
	r       io.Reader
	steps   int
	buf     []byte
	scratch big.Int // bernoulli's uniform draw
}

// newSampler returns a sampler reading r, or crypto/rand.Reader if r is nil.
func newSampler(r io.Reader) *sampler {
	if r == nil {
		r = rand.Reader
	}
	return &sampler{r: bufio.NewReaderSize(r, randomBuffer)}
}

// step counts one loop iteration and fails past maxSteps.
func (s *sampler) step() error {
	s.steps++
	if s.steps > maxSteps {
		return fmt.Errorf("%w: no result after %d steps", ErrRandomness, maxSteps)
	}
	return nil
}

// uniform sets u to an integer uniform in [0, n), n > 0, by rejection: draw
// n's bit length in random bits, retry while the draw is n or more.
func (s *sampler) uniform(u, n *big.Int) error {
	bits := n.BitLen()
	size := (bits + 7) / 8
	if cap(s.buf) < size {
		s.buf = make([]byte, size)
	}
	b := s.buf[:size]
	mask := byte(0xff >> (8*size - bits))
	for {
		if err := s.step(); err != nil {
			return err
		}
		if _, err := io.ReadFull(s.r, b); err != nil {
			return fmt.Errorf("%w: %w", ErrRandomness, err)
		}
		b[0] &= mask
		if u.SetBytes(b).Cmp(n) < 0 {
			return nil
		}
	}
}

// bernoulli returns true with probability num/den, 0 ≤ num ≤ den, den > 0.
func (s *sampler) bernoulli(num, den *big.Int) (bool, error) {
	if err := s.uniform(&s.scratch, den); err != nil {
		return false, err
	}
	return s.scratch.Cmp(num) < 0, nil
}

// bernoulliExp returns true with probability exp(-num/den), num ≥ 0,
// den > 0 (Algorithm 1).
func (s *sampler) bernoulliExp(num, den *big.Int) (bool, error) {
	if num.Cmp(den) <= 0 {
		return s.bernoulliExpSmall(num, den)
	}
	// exp(-γ) = exp(-1)^⌊γ⌋ · exp(-(γ-⌊γ⌋)): ⌊γ⌋ coins of exp(-1), then one
	// for the fractional part; stop at the first failure.
	whole, frac := new(big.Int).QuoRem(num, den, new(big.Int))
	for i := new(big.Int); i.Cmp(whole) < 0; i.Add(i, one) {
		ok, err := s.bernoulliExpSmall(one, one)
		if err != nil || !ok {
			return false, err
		}
	}
	return s.bernoulliExpSmall(frac, den)
}

// bernoulliExpSmall is Algorithm 1 for γ = num/den in [0, 1]: draw
// A_k ~ Bernoulli(γ/k) for k = 1, 2, ... until one is false; the first
// false index K is odd with probability exactly exp(-γ).
func (s *sampler) bernoulliExpSmall(num, den *big.Int) (bool, error) {
	k := int64(1)
	kden := new(big.Int).Set(den)
	for {
		if err := s.step(); err != nil {
			return false, err
		}
		a, err := s.bernoulli(num, kden)
		if err != nil {
			return false, err
		}
		if !a {
			return k%2 == 1, nil
		}
		k++
		kden.Add(kden, den)
	}
}

// geometricExp1 returns V ≥ 0 with P(V = v) = (1-e^-1)·e^-v: the number of
// Bernoulli(exp(-1)) successes before the first failure.
func (s *sampler) geometricExp1() (*big.Int, error) {
	v := new(big.Int)
	for {
		if err := s.step(); err != nil {
			return nil, err
		}
		ok, err := s.bernoulliExpSmall(one, one)
		if err != nil {
			return nil, err
		}
		if !ok {
			return v, nil
		}
		v.Add(v, one)
	}
}

// laplace returns Z with P(Z = z) ∝ exp(-|z|·sNum/tDen): the discrete
// Laplace distribution of scale t/s, for positive integers s and t
// (Algorithm 2).
func (s *sampler) laplace(sNum, tDen *big.Int) (*big.Int, error) {
	u := new(big.Int)
	for {
		if err := s.step(); err != nil {
			return nil, err
		}
		// X = U + t·V is geometric with parameter 1 - exp(-1/t): U is its
		// remainder mod t (accepted with probability exp(-U/t)), V its
		// quotient.
		if err := s.uniform(u, tDen); err != nil {
			return nil, err
		}
		d, err := s.bernoulliExp(u, tDen)
		if err != nil {
			return nil, err
		}
		if !d {
			continue
		}
		v, err := s.geometricExp1()
		if err != nil {
			return nil, err
		}
		x := v.Mul(v, tDen)
		x.Add(x, u)
		// Y = ⌊X/s⌋ is geometric with parameter 1 - exp(-s/t).
		y := x.Quo(x, sNum)
		b, err := s.bernoulli(one, two)
		if err != nil {
			return nil, err
		}
		if b && y.Sign() == 0 {
			continue // -0: reject, so that 0 is not counted twice
		}
		if b {
			y.Neg(y)
		}
		return y, nil
	}
}

// gaussian returns Y with P(Y = y) ∝ exp(-y²/(2σ²)), σ² = a/b for positive
// integers a and b (Algorithm 3): a discrete Laplace candidate of scale
// t = ⌊σ⌋+1, accepted with probability exp(-(|Y| - σ²/t)²/(2σ²)).
func (s *sampler) gaussian(a, b *big.Int) (*big.Int, error) {
	// ⌊σ⌋ = ⌊√⌊σ²⌋⌋, so t is exact.
	t := new(big.Int).Quo(a, b)
	t.Sqrt(t).Add(t, one)
	// γ = (|Y|·b·t - a)² / (2·a·b·t²)
	bt := new(big.Int).Mul(b, t)
	den := new(big.Int).Mul(bt, t)
	den.Mul(den, a).Lsh(den, 1)
	num := new(big.Int)
	for {
		if err := s.step(); err != nil {
			return nil, err
		}
		y, err := s.laplace(one, t)
		if err != nil {
			return nil, err
		}
		num.Abs(y).Mul(num, bt).Sub(num, a)
		num.Mul(num, num)
		c, err := s.bernoulliExp(num, den)
		if err != nil {
			return nil, err
		}
		if c {
			return y, nil
		}
	}
}
