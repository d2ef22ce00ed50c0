package privacy

import (
	"fmt"
	"io"
	"math/big"
)

// Limits on mechanism parameters. They keep every noise value far inside
// int64 (an overflow at scale 2^40 needs a tail event of probability about
// exp(-2^23)) and refuse parameters that protect nothing.
const (
	// MaxSensitivity is the largest sensitivity a mechanism accepts.
	MaxSensitivity = 1 << 40
	// MaxScale is the largest noise scale: sensitivity/ε for Laplace, σ
	// for Gaussian.
	MaxScale = 1 << 40
)

// maxPrivacy is the largest ε or ρ a mechanism accepts: above it the
// guarantee (a likelihood ratio of e^100) is void.
var maxPrivacy = big.NewRat(100, 1)

// A Mechanism draws the noise added to an integer-valued query. The noise
// does not depend on the data; its distribution is fixed when the
// Mechanism is made.
type Mechanism interface {
	// Noise draws one noise value from r, or from crypto/rand.Reader when
	// r is nil. r must be uniform and secret: with a predictable r the
	// noise protects nothing. Noise may read more of r than it uses.
	Noise(r io.Reader) (int64, error)
}

// Laplace is the discrete Laplace (two-sided geometric) mechanism: noise Z
// with P(Z = z) ∝ exp(-|z|·ε/Δ). Added to a query whose value changes by at
// most Δ (its sensitivity) between neighbouring datasets, it gives ε-DP.
type Laplace struct {
	sensitivity int64
	epsilon     Epsilon
	s, t        *big.Int // scale t/s = Δ/ε
}

// NewLaplace returns the discrete Laplace mechanism for a query of the given
// sensitivity (at most MaxSensitivity) at privacy ε (0 < ε ≤ 100); the noise
// scale Δ/ε must not exceed MaxScale.
func NewLaplace(sensitivity int64, epsilon Epsilon) (*Laplace, error) {
	if err := checkSensitivity(sensitivity); err != nil {
		return nil, err
	}
	eps := ratOf(epsilon.r)
	if eps.Sign() <= 0 || eps.Cmp(maxPrivacy) > 0 {
		return nil, fmt.Errorf("%w: epsilon %s not in (0, %s]", ErrBadParameter, epsilon, maxPrivacy.RatString())
	}
	// Δ/(p/q) = Δq/p
	t := new(big.Int).Mul(big.NewInt(sensitivity), eps.Denom())
	s := new(big.Int).Set(eps.Num())
	if new(big.Int).Quo(t, s).Cmp(big.NewInt(MaxScale)) >= 0 {
		return nil, fmt.Errorf("%w: scale %d/%s above 2^40", ErrBadParameter, sensitivity, epsilon)
	}
	return &Laplace{sensitivity: sensitivity, epsilon: epsilon, s: s, t: t}, nil
}

// Epsilon returns the ε each Noise value costs.
func (l *Laplace) Epsilon() Epsilon { return l.epsilon }

// Sensitivity returns the sensitivity the mechanism was made for.
func (l *Laplace) Sensitivity() int64 { return l.sensitivity }

// Noise draws one value of discrete Laplace noise.
func (l *Laplace) Noise(r io.Reader) (int64, error) {
	z, err := newSampler(r).laplace(l.s, l.t)
	if err != nil {
		return 0, err
	}
	return toInt64(z)
}

// Gaussian is the discrete Gaussian mechanism: noise Y with P(Y = y) ∝
// exp(-y²/(2σ²)), σ² = Δ²/(2ρ). Added to a query of (L2) sensitivity Δ it
// gives ρ-zero-concentrated DP (ρ-zCDP, as Canonne, Kamath and Steinke
// prove), which implies (ρ + 2√(ρ·ln(1/δ)), δ)-DP for every δ > 0. It
// is not ε-DP for any ε: a Budget, which accounts pure ε, does not account
// it; ρ composes additively, and a zCDP budget is the caller's.
type Gaussian struct {
	sensitivity int64
	rho         Rho
	a, b        *big.Int // σ² = a/b
}

// NewGaussian returns the discrete Gaussian mechanism for a query of the
// given sensitivity (at most MaxSensitivity) at ρ-zCDP (0 < ρ ≤ 100); σ
// must not exceed MaxScale.
func NewGaussian(sensitivity int64, rho Rho) (*Gaussian, error) {
	if err := checkSensitivity(sensitivity); err != nil {
		return nil, err
	}
	p := ratOf(rho.r)
	if p.Sign() <= 0 || p.Cmp(maxPrivacy) > 0 {
		return nil, fmt.Errorf("%w: rho %s not in (0, %s]", ErrBadParameter, rho, maxPrivacy.RatString())
	}
	// Δ²/(2·p/q) = Δ²q/(2p)
	d := big.NewInt(sensitivity)
	a := new(big.Int).Mul(d, d)
	a.Mul(a, p.Denom())
	b := new(big.Int).Lsh(p.Num(), 1)
	maxVar := new(big.Int).Lsh(one, 80) // σ ≤ 2^40
	if new(big.Int).Quo(a, b).Cmp(maxVar) >= 0 {
		return nil, fmt.Errorf("%w: sigma for sensitivity %d at rho %s above 2^40", ErrBadParameter, sensitivity, rho)
	}
	return &Gaussian{sensitivity: sensitivity, rho: rho, a: a, b: b}, nil
}

// Rho returns the ρ each Noise value costs.
func (g *Gaussian) Rho() Rho { return g.rho }

// Sensitivity returns the sensitivity the mechanism was made for.
func (g *Gaussian) Sensitivity() int64 { return g.sensitivity }

// Sigma2 returns σ², exactly.
func (g *Gaussian) Sigma2() *big.Rat { return new(big.Rat).SetFrac(g.a, g.b) }

// Noise draws one value of discrete Gaussian noise.
func (g *Gaussian) Noise(r io.Reader) (int64, error) {
	y, err := newSampler(r).gaussian(g.a, g.b)
	if err != nil {
		return 0, err
	}
	return toInt64(y)
}

// AddNoise returns value plus one draw of m's noise from r (crypto/rand
// when r is nil). Reserve the mechanism's cost from a Budget before calling
// it, and commit the reservation whatever it returns once noise was drawn.
// ErrOverflow, when value+noise leaves int64, is a function of the noisy
// value alone and so reveals no more than the release would have.
func AddNoise(value int64, m Mechanism, r io.Reader) (int64, error) {
	n, err := m.Noise(r)
	if err != nil {
		return 0, err
	}
	sum := value + n
	if (n > 0 && sum < value) || (n < 0 && sum > value) {
		return 0, fmt.Errorf("%w: value plus noise overflows int64", ErrOverflow)
	}
	return sum, nil
}

func checkSensitivity(d int64) error {
	if d < 1 || d > MaxSensitivity {
		return fmt.Errorf("%w: sensitivity %d not in [1, 2^40]", ErrBadParameter, d)
	}
	return nil
}

func toInt64(z *big.Int) (int64, error) {
	if !z.IsInt64() {
		return 0, fmt.Errorf("%w: noise beyond int64", ErrOverflow)
	}
	return z.Int64(), nil
}
