package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestAlternate(t *testing.T) {
	var calls []string
	f := Figure{Name: "seal", Baseline: "age", Unit: "s", Target: "≤ 1.5×"}
	k, b := 2.0, 1.0
	err := Alternate(context.Background(), &f, 3,
		func(context.Context) (float64, error) { calls = append(calls, "b"); b++; return b, nil },
		func(context.Context) (float64, error) { calls = append(calls, "k"); k += 2; return k, nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(calls, ""); got != "bkkbbk" {
		t.Errorf("order %q, want bkkbbk (the first to run alternates)", got)
	}
	if r := f.Ratios(); len(r) != 3 || r[0] != 4.0/2 || r[2] != 8.0/4 {
		t.Errorf("ratios %v", r)
	}
	var out bytes.Buffer
	if err := WriteFigures(&out, []Figure{f, {Name: "open", Baseline: "tlock", Unit: "/s"}}, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"seal", "age", "6.00 s", "3.00 s", "2.00×", "2.00–2.00", "≤ 1.5×", "open", "tlock"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := WriteFigures(&out, []Figure{f}, true); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || rows[0]["ratio_median"] != 2.0 {
		t.Errorf("JSON %s (%v)", out.String(), err)
	}

	boom := errors.New("boom")
	err = Alternate(context.Background(), &Figure{Name: "x", Baseline: "y"}, 1,
		func(context.Context) (float64, error) { return 1, nil },
		func(context.Context) (float64, error) { return 0, boom })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "x, kura (pair 1)") {
		t.Errorf("error %v", err)
	}
}
