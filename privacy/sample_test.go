package privacy

import (
	"errors"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// seeded returns a deterministic uniform source. Tests only: noise for a
// release always comes from crypto/rand.
func seeded(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// TestBernoulliExp checks Algorithm 1 against exp(-γ): γ = 0 is certain,
// and for every other γ the count of successes in n draws lies within 5
// standard deviations of n·exp(-γ).
func TestBernoulliExp(t *testing.T) {
	t.Parallel()
	s := newSampler(seeded(1))
	for range 1000 {
		s.steps = 0
		ok, err := s.bernoulliExp(big.NewInt(0), big.NewInt(7))
		if err != nil || !ok {
			t.Fatalf("Bernoulli(exp(0)) = %v, %v; want true", ok, err)
		}
	}
	const n = 100_000
	for _, g := range [][2]int64{{1, 3}, {1, 2}, {1, 1}, {3, 2}, {5, 2}, {7, 3}, {4, 1}, {123456789, 1000000007}} {
		num, den := big.NewInt(g[0]), big.NewInt(g[1])
		hits := 0
		for range n {
			s.steps = 0
			ok, err := s.bernoulliExp(num, den)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				hits++
			}
		}
		p := math.Exp(-float64(g[0]) / float64(g[1]))
		z := (float64(hits) - n*p) / math.Sqrt(n*p*(1-p))
		t.Logf("γ=%d/%d: %d/%d = %.5f, exp(-γ) = %.5f, z = %+.2f", g[0], g[1], hits, n, float64(hits)/n, p, z)
		if math.Abs(z) > 5 {
			t.Errorf("γ=%d/%d: z = %.2f, beyond 5", g[0], g[1], z)
		}
	}
}

// TestUniform checks the rejection sampler on a bound that is not a power
// of two, with a chi-square test (p > 0.001).
func TestUniform(t *testing.T) {
	t.Parallel()
	s := newSampler(seeded(2))
	const n, m = 60_000, 6
	counts := make([]float64, m)
	for range n {
		s.steps = 0
		u := new(big.Int)
		if err := s.uniform(u, big.NewInt(m)); err != nil {
			t.Fatal(err)
		}
		counts[u.Int64()]++
	}
	stat := 0.0
	for _, c := range counts {
		stat += (c - n/m) * (c - n/m) / (n / m)
	}
	if p := chiSquareP(stat, m-1); p < 0.001 {
		t.Errorf("uniform[0,%d): chi2 = %.2f, p = %.2g", m, stat, p)
	}
}

type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// TestBrokenSource checks that a source that is constant or failing makes a
// draw fail with ErrRandomness instead of looping or panicking.
func TestBrokenSource(t *testing.T) {
	t.Parallel()
	lap, err := NewLaplace(1, mustEpsilon(t, "1"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGaussian(3, mustRho(t, "0.5"))
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]io.Reader{"zeros": constReader(0), "ones": constReader(0xff), "failing": failReader{}, "empty": &io.LimitedReader{R: seeded(3), N: 5}} {
		for _, m := range []Mechanism{lap, g} {
			if _, err := m.Noise(r); !errors.Is(err, ErrRandomness) {
				t.Errorf("%s source, %T: err = %v, want ErrRandomness", name, m, err)
			}
		}
	}
}

func mustEpsilon(t testing.TB, s string) Epsilon {
	t.Helper()
	e, err := ParseEpsilon(s)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustRho(t testing.TB, s string) Rho {
	t.Helper()
	r, err := ParseRho(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// chiSquareP returns the upper tail probability of a chi-square statistic
// with df degrees of freedom, by the Wilson–Hilferty approximation (a
// normal approximation to the cube root; ample for a 0.001 threshold).
func chiSquareP(stat float64, df int) float64 {
	k := float64(df)
	z := (math.Cbrt(stat/k) - (1 - 2/(9*k))) / math.Sqrt(2/(9*k))
	return 0.5 * math.Erfc(z/math.Sqrt2)
}
