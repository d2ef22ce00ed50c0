package bench

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestBenchAttest runs the benchmark tiny, so it cannot rot.
func TestBenchAttest(t *testing.T) {
	var out strings.Builder
	if err := Attest(context.Background(), AttestConfig{N: 2, Pairs: 1, JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Name   string  `json:"name"`
		Target string  `json:"target"`
		Ratio  float64 `json:"ratio_median"`
	}
	if err := json.Unmarshal([]byte(out.String()), &rows); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	want := []string{"snp verify, cold", "snp verify, warm", "tdx verify, cold", "tdx verify, warm"}
	if len(rows) != len(want) {
		t.Fatalf("%d figures, want %d:\n%s", len(rows), len(want), out.String())
	}
	for i, r := range rows {
		if r.Name != want[i] || r.Ratio <= 0 {
			t.Errorf("figure %d: %+v", i, r)
		}
	}
	if rows[0].Target != "≥ 1.0×" || rows[1].Target != "≥ 2×" || rows[2].Target != "≥ 1.2×" {
		t.Errorf("targets %+v", rows)
	}
	if err := Attest(context.Background(), AttestConfig{N: 0, Pairs: 1}, &out); !errors.Is(err, ErrUsage) {
		t.Errorf("n 0: %v, want ErrUsage", err)
	}
}
