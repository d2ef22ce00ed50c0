package privacy

import (
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/internal/fault"
)

func TestParseEpsilon(t *testing.T) {
	for in, want := range map[string]string{
		"0.5": "0.5", "1.50": "1.5", "007": "7", "0": "0", "1/3": "1/3", "2/4": "0.5",
		"1/8": "0.125", "0.000000000000000001": "0.000000000000000001", "10/5": "2",
	} {
		e, err := ParseEpsilon(in)
		if err != nil {
			t.Errorf("ParseEpsilon(%q): %v", in, err)
			continue
		}
		if got := e.String(); got != want {
			t.Errorf("ParseEpsilon(%q).String() = %q, want %q", in, got, want)
		}
	}
	for _, in := range []string{
		"", "-1", "+1", " 1", "1 ", "1e-3", "0x1", ".5", "5.", "1/0", "1/3/4", "/3", "3/",
		"1.5/2", "NaN", "Inf", "½", "0.0000000000000000001", "1/10000000000000000001",
		strings.Repeat("1", 41),
	} {
		_, err := ParseEpsilon(in)
		if !errors.Is(err, ErrMalformed) || fault.KindOf(err) != fault.Malformed {
			t.Errorf("ParseEpsilon(%q) = %v, want ErrMalformed", in, err)
		}
		if _, err := ParseRho(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRho(%q) = %v, want ErrMalformed", in, err)
		}
	}
}

func TestEpsilonText(t *testing.T) {
	// A running sum outgrows a parameter's limits and still round-trips.
	sum := Epsilon{}
	for _, s := range []string{"1/999999999999999989", "1/999999999999999877", "0.1"} {
		sum = sum.Add(mustEpsilon(t, s))
	}
	text, err := sum.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	var back Epsilon
	if err := back.UnmarshalText(text); err != nil || back.Cmp(sum) != 0 {
		t.Fatalf("UnmarshalText(%s) = %s, %v", text, back, err)
	}
	if _, err := ParseEpsilon(string(text)); err == nil {
		t.Errorf("ParseEpsilon(%s) accepted a denominator above 10^18", text)
	}
}

// FuzzParameters checks that no string or sensitivity makes parsing, a
// constructor or a draw panic, and that a parsed ε round-trips exactly.
func FuzzParameters(f *testing.F) {
	for _, s := range []string{"0.5", "1", "1/3", "100", "0.000000000000000001", "-1", "1e3", "", "1/0", "99999999999999999999/7"} {
		for _, d := range []int64{1, 0, -1, 1 << 40, 1<<40 + 1} {
			f.Add(s, d)
		}
	}
	f.Fuzz(func(t *testing.T, s string, sensitivity int64) {
		eps, err := ParseEpsilon(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseEpsilon(%q): %v is not ErrMalformed", s, err)
			}
			return
		}
		var back Epsilon
		if err := back.UnmarshalText([]byte(eps.String())); err != nil || back.Cmp(eps) != 0 {
			t.Fatalf("%q → %q → %v, %v", s, eps, back, err)
		}
		if lap, err := NewLaplace(sensitivity, eps); err == nil {
			if _, err := lap.Noise(seeded(40)); err != nil {
				t.Fatal(err)
			}
		} else if !errors.Is(err, ErrBadParameter) {
			t.Fatalf("NewLaplace: %v", err)
		}
		rho, err := ParseRho(s)
		if err != nil {
			t.Fatalf("ParseRho(%q) failed where ParseEpsilon did not: %v", s, err)
		}
		if g, err := NewGaussian(sensitivity, rho); err == nil {
			if _, err := g.Noise(seeded(41)); err != nil {
				t.Fatal(err)
			}
		} else if !errors.Is(err, ErrBadParameter) {
			t.Fatalf("NewGaussian: %v", err)
		}
	})
}
