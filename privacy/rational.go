package privacy

import (
	"fmt"
	"math/big"
	"strings"
)

// maxParamLen bounds the text ParseEpsilon and ParseRho read; maxDen bounds
// the denominator they accept, so that parameters stay small numbers.
// maxStateLen bounds the text UnmarshalText reads: a budget's running sum of
// fractions can outgrow the limits on a parameter, and must still round-trip.
const (
	maxParamLen = 40
	maxDigits   = 18
	maxStateLen = 1024
)

var maxDen = new(big.Int).Exp(big.NewInt(10), big.NewInt(maxDigits), nil)

// Epsilon is a privacy-loss parameter ε of pure differential privacy, held
// as an exact non-negative rational. The zero value is 0. An Epsilon is
// immutable; compare two with Cmp, not ==.
type Epsilon struct{ r *big.Rat }

// Rho is a zero-concentrated differential privacy (zCDP) parameter ρ, held
// as an exact non-negative rational. The zero value is 0.
type Rho struct{ r *big.Rat }

// ParseEpsilon parses a non-negative decimal ("0.5", "2", "0.125") or
// fraction ("1/3") of at most 40 characters, with at most 18 digits after
// the point and a denominator of at most 10^18. It never rounds: what is
// parsed is what is accounted.
func ParseEpsilon(s string) (Epsilon, error) {
	r, err := parseRat(s, true)
	if err != nil {
		return Epsilon{}, fmt.Errorf("%w: epsilon: %w", ErrMalformed, err)
	}
	return Epsilon{r}, nil
}

// NewEpsilon returns the Epsilon num/den; den must be positive and num
// non-negative.
func NewEpsilon(num, den int64) (Epsilon, error) {
	if num < 0 || den <= 0 {
		return Epsilon{}, fmt.Errorf("%w: epsilon %d/%d", ErrBadParameter, num, den)
	}
	return Epsilon{big.NewRat(num, den)}, nil
}

// ParseRho parses ρ with the syntax and limits of ParseEpsilon.
func ParseRho(s string) (Rho, error) {
	r, err := parseRat(s, true)
	if err != nil {
		return Rho{}, fmt.Errorf("%w: rho: %w", ErrMalformed, err)
	}
	return Rho{r}, nil
}

// parseRat parses a non-negative decimal or fraction. strict applies the
// limits on a parameter; otherwise only maxStateLen applies.
func parseRat(s string, strict bool) (*big.Rat, error) {
	maxLen := maxStateLen
	if strict {
		maxLen = maxParamLen
	}
	if len(s) == 0 || len(s) > maxLen {
		return nil, fmt.Errorf("length %d not in [1, %d]", len(s), maxLen)
	}
	num, den, frac := s, "", false
	if i := strings.IndexByte(s, '/'); i >= 0 {
		num, den, frac = s[:i], s[i+1:], true
	}
	if frac {
		if !digits(num) || !digits(den) {
			return nil, fmt.Errorf("%q is not a fraction of decimal integers", s)
		}
		d, _ := new(big.Int).SetString(den, 10)
		if d.Sign() == 0 {
			return nil, fmt.Errorf("%q has a zero denominator", s)
		}
		n, _ := new(big.Int).SetString(num, 10)
		r := new(big.Rat).SetFrac(n, d)
		if strict && r.Denom().Cmp(maxDen) > 0 {
			return nil, fmt.Errorf("%q has a denominator above 10^%d", s, maxDigits)
		}
		return r, nil
	}
	whole, fraction, point := strings.Cut(s, ".")
	if !digits(whole) || (point && !digits(fraction)) || (strict && len(fraction) > maxDigits) {
		return nil, fmt.Errorf("%q is not a decimal with at most %d digits after the point", s, maxDigits)
	}
	n, _ := new(big.Int).SetString(whole+fraction, 10)
	d := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(fraction))), nil)
	return new(big.Rat).SetFrac(n, d), nil
}

// digits reports whether s is a non-empty run of ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func ratOf(r *big.Rat) *big.Rat {
	if r == nil {
		return new(big.Rat)
	}
	return r
}

// formatRat writes r exactly: as a decimal when that takes at most 18
// digits after the point, as "num/den" otherwise.
func formatRat(r *big.Rat) string {
	r = ratOf(r)
	if r.IsInt() {
		return r.Num().String()
	}
	if n, exact := r.FloatPrec(); exact && n <= maxDigits {
		return r.FloatString(n)
	}
	return r.String()
}

// String returns ε exactly, in a form UnmarshalText reads back (as does
// ParseEpsilon, within its limits): "0.5", "2", "1/3".
func (e Epsilon) String() string { return formatRat(e.r) }

// Rat returns ε as a new big.Rat.
func (e Epsilon) Rat() *big.Rat { return new(big.Rat).Set(ratOf(e.r)) }

// Cmp compares e and f, returning -1, 0 or +1.
func (e Epsilon) Cmp(f Epsilon) int { return ratOf(e.r).Cmp(ratOf(f.r)) }

// Sign returns -1, 0 or +1 as e is negative, zero or positive.
func (e Epsilon) Sign() int { return ratOf(e.r).Sign() }

// Add returns e + f, exactly.
func (e Epsilon) Add(f Epsilon) Epsilon {
	return Epsilon{new(big.Rat).Add(ratOf(e.r), ratOf(f.r))}
}

// sub returns e - f, which may be negative; only the accountant uses it.
func (e Epsilon) sub(f Epsilon) Epsilon {
	return Epsilon{new(big.Rat).Sub(ratOf(e.r), ratOf(f.r))}
}

// Float64 returns ε rounded to a float64, for display only: nothing in this
// package computes with it.
func (e Epsilon) Float64() float64 {
	f, _ := ratOf(e.r).Float64()
	return f
}

// MarshalText returns String's form.
func (e Epsilon) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText parses text as ParseEpsilon does, without its limits on
// digits (a Store's running sum may need more), up to 1024 characters.
func (e *Epsilon) UnmarshalText(text []byte) error {
	r, err := parseRat(string(text), false)
	if err != nil {
		return fmt.Errorf("%w: epsilon: %w", ErrMalformed, err)
	}
	*e = Epsilon{r}
	return nil
}

// String returns ρ exactly, in the form of Epsilon.String.
func (r Rho) String() string { return formatRat(r.r) }

// Rat returns ρ as a new big.Rat.
func (r Rho) Rat() *big.Rat { return new(big.Rat).Set(ratOf(r.r)) }
