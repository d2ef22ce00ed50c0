package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestBenchTimelock runs the benchmark tiny, so it cannot rot.
func TestBenchTimelock(t *testing.T) {
	var out strings.Builder
	if err := Timelock(context.Background(), TimelockConfig{Size: 64 << 10, Pairs: 1, Dir: t.TempDir()}, &out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, want := range []string{"timelock seal", "timelock open", "tlock v1.1.0 Encrypt", "MiB/s", "≥ 0.9×"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := Timelock(context.Background(), TimelockConfig{Size: 0, Pairs: 1}, &out); !errors.Is(err, ErrUsage) {
		t.Errorf("size 0: %v, want ErrUsage", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "64MiB": 64 << 20, "2GiB": 2 << 30, "512KiB": 512 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "1.5MiB", "MiB", "1TB", "99999999999GiB"} {
		if _, err := ParseSize(in); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseSize(%q): %v, want ErrUsage", in, err)
		}
	}
}
