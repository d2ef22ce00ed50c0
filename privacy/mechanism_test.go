package privacy

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"io"

	"github.com/kura-cc/kura/internal/fault"
)

// The statistical tests draw this many samples from a seeded source and
// compare them with the exact pmf.
const samples = 200_000

// draw returns the counts of n draws of m from a seeded source.
func draw(t *testing.T, m Mechanism, seed byte, n int) map[int64]int {
	t.Helper()
	r := seeded(seed)
	counts := make(map[int64]int)
	for range n {
		z, err := m.Noise(r)
		if err != nil {
			t.Fatal(err)
		}
		counts[z]++
	}
	return counts
}

// goodnessOfFit returns the chi-square statistic, its degrees of freedom
// and p-value of counts against pmf, with one bin per value whose expected
// count is at least 5 (a contiguous range around 0) and one bin for each
// tail beyond it.
func goodnessOfFit(counts map[int64]int, n int, pmf func(int64) float64) (stat float64, df int, p float64) {
	lo, hi := int64(0), int64(0)
	for float64(n)*pmf(lo-1) >= 5 {
		lo--
	}
	for float64(n)*pmf(hi+1) >= 5 {
		hi++
	}
	mass := 0.0
	var below, above float64
	for k, c := range counts {
		if k < lo {
			below += float64(c)
		} else if k > hi {
			above += float64(c)
		}
	}
	bins := 0
	add := func(observed, expected float64) {
		stat += (observed - expected) * (observed - expected) / expected
		bins++
	}
	for k := lo; k <= hi; k++ {
		mass += pmf(k)
		add(float64(counts[k]), float64(n)*pmf(k))
	}
	// The tails share the remaining mass by symmetry.
	tail := float64(n) * (1 - mass) / 2
	if tail >= 5 {
		add(below, tail)
		add(above, tail)
	}
	df = bins - 1
	return stat, df, chiSquareP(stat, df)
}

// lossCheck compares the empirical privacy loss ln(c(k)/c(k+Δ)) with bound
// for every k where both counts are at least 1000 (the bulk), allowing 4.5
// standard errors (se ≈ √(1/c(k) + 1/c(k+Δ))). It returns the largest
// |loss| seen.
func lossCheck(t *testing.T, counts map[int64]int, delta int64, within func(k int64, loss, tol float64) error) float64 {
	t.Helper()
	worst, checked := 0.0, 0
	for k, c := range counts {
		d := counts[k+delta]
		if c < 1000 || d < 1000 {
			continue
		}
		loss := math.Log(float64(c) / float64(d))
		tol := 4.5 * math.Sqrt(1/float64(c)+1/float64(d))
		if err := within(k, loss, tol); err != nil {
			t.Errorf("k=%d: %v", k, err)
		}
		worst = max(worst, math.Abs(loss))
		checked++
	}
	if checked < 4 {
		t.Errorf("only %d values in the bulk", checked)
	}
	return worst
}

func TestLaplaceDistribution(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		sensitivity int64
		epsilon     string
	}{
		{1, "1"},   // scale 1
		{2, "0.5"}, // scale 4
	} {
		t.Run(fmt.Sprintf("Δ=%d,ε=%s", tc.sensitivity, tc.epsilon), func(t *testing.T) {
			t.Parallel()
			eps := mustEpsilon(t, tc.epsilon)
			lap, err := NewLaplace(tc.sensitivity, eps)
			if err != nil {
				t.Fatal(err)
			}
			counts := draw(t, lap, byte(10+i), samples)
			// P(k) = (1-α)/(1+α)·α^|k|, α = exp(-ε/Δ).
			alpha := math.Exp(-eps.Float64() / float64(tc.sensitivity))
			pmf := func(k int64) float64 {
				return (1 - alpha) / (1 + alpha) * math.Pow(alpha, math.Abs(float64(k)))
			}
			stat, df, p := goodnessOfFit(counts, samples, pmf)
			t.Logf("chi2 = %.1f, df = %d, p = %.3f", stat, df, p)
			if p < 0.001 {
				t.Errorf("distribution does not fit: p = %.2g < 0.001", p)
			}
			worst := lossCheck(t, counts, tc.sensitivity, func(k int64, loss, tol float64) error {
				if math.Abs(loss) > eps.Float64()+tol {
					return fmt.Errorf("privacy loss %.4f beyond ε = %s (+%.4f)", loss, eps, tol)
				}
				return nil
			})
			t.Logf("largest |ln P(k)/P(k+Δ)| in the bulk = %.4f (ε = %s)", worst, eps)
		})
	}
}

func TestGaussianDistribution(t *testing.T) {
	t.Parallel()
	// ρ = 0.02, Δ = 1: σ² = 1/(2·0.02) = 25.
	g, err := NewGaussian(1, mustRho(t, "0.02"))
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Sigma2().RatString(); got != "25" {
		t.Fatalf("σ² = %s, want 25", got)
	}
	const sigma2 = 25.0
	norm := 0.0
	for k := -500; k <= 500; k++ {
		norm += math.Exp(-float64(k*k) / (2 * sigma2))
	}
	pmf := func(k int64) float64 { return math.Exp(-float64(k*k)/(2*sigma2)) / norm }
	counts := draw(t, g, 20, samples)
	stat, df, p := goodnessOfFit(counts, samples, pmf)
	t.Logf("chi2 = %.1f, df = %d, p = %.3f", stat, df, p)
	if p < 0.001 {
		t.Errorf("distribution does not fit: p = %.2g < 0.001", p)
	}
	// The privacy loss at k is ((k+1)² - k²)/(2σ²), unbounded in k: the
	// empirical one must match it.
	worst := lossCheck(t, counts, 1, func(k int64, loss, tol float64) error {
		want := float64((k+1)*(k+1)-k*k) / (2 * sigma2)
		if math.Abs(loss-want) > tol {
			return fmt.Errorf("privacy loss %.4f, want %.4f ± %.4f", loss, want, tol)
		}
		return nil
	})
	t.Logf("largest |ln P(k)/P(k+1)| in the bulk = %.4f", worst)
}

func TestBadParameters(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sensitivity int64
		param       string
		laplaceOnly bool // ρ at this value is a valid, if noisy, Gaussian
	}{
		{"zero epsilon", 1, "0", false},
		{"epsilon above 100", 1, "100.5", false},
		{"zero sensitivity", 0, "1", false},
		{"negative sensitivity", -5, "1", false},
		{"huge sensitivity", MaxSensitivity + 1, "1", false},
		{"scale above 2^40", MaxSensitivity, "0.5", false},
		{"tiny epsilon", 1, "0.0000000000001", true}, // scale 10^13 > 2^40
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps := mustEpsilon(t, tc.param)
			if _, err := NewLaplace(tc.sensitivity, eps); !errors.Is(err, ErrBadParameter) || fault.KindOf(err) != fault.BadRequest {
				t.Errorf("NewLaplace(%d, %s) = %v, want ErrBadParameter", tc.sensitivity, eps, err)
			}
			if tc.laplaceOnly {
				return
			}
			rho := mustRho(t, tc.param)
			if tc.name == "scale above 2^40" {
				rho = mustRho(t, "0.25") // σ² = 2^80·2
			}
			if _, err := NewGaussian(tc.sensitivity, rho); !errors.Is(err, ErrBadParameter) {
				t.Errorf("NewGaussian(%d, %s) = %v, want ErrBadParameter", tc.sensitivity, rho, err)
			}
		})
	}
	if _, err := NewLaplace(1, Epsilon{}); !errors.Is(err, ErrBadParameter) {
		t.Errorf("zero-value Epsilon: %v", err)
	}
	if _, err := NewGaussian(1, Rho{}); !errors.Is(err, ErrBadParameter) {
		t.Errorf("zero-value Rho: %v", err)
	}
	if _, err := NewEpsilon(1, 0); !errors.Is(err, ErrBadParameter) {
		t.Errorf("NewEpsilon(1, 0): %v", err)
	}
}

func TestExtremeButValid(t *testing.T) {
	r := seeded(30)
	for _, m := range []Mechanism{
		must(NewLaplace(MaxSensitivity, mustEpsilon(t, "1.0001"))),
		must(NewLaplace(1, mustEpsilon(t, "100"))),
		must(NewGaussian(1, mustRho(t, "100"))),
		must(NewGaussian(1<<30, mustRho(t, "1"))),
	} {
		for range 100 {
			if _, err := m.Noise(r); err != nil {
				t.Fatalf("%T: %v", m, err)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type fixedNoise int64

func (f fixedNoise) Noise(io.Reader) (int64, error) { return int64(f), nil }

func TestAddNoise(t *testing.T) {
	for _, tc := range []struct {
		value, noise, want int64
		err                error
	}{
		{10, -3, 7, nil},
		{math.MaxInt64, 1, 0, ErrOverflow},
		{math.MinInt64, -1, 0, ErrOverflow},
		{math.MaxInt64, -1, math.MaxInt64 - 1, nil},
	} {
		got, err := AddNoise(tc.value, fixedNoise(tc.noise), nil)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("AddNoise(%d, %d) = %d, %v; want %d, %v", tc.value, tc.noise, got, err, tc.want, tc.err)
		}
	}
	// The default source is crypto/rand.
	lap := must(NewLaplace(1, mustEpsilon(t, "0.5")))
	if _, err := AddNoise(100, lap, nil); err != nil {
		t.Fatal(err)
	}
}
