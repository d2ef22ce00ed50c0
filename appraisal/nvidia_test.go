package appraisal

import (
	"context"
	"strings"
	"testing"

	"github.com/veraison/ear"
)

// TestAppraiseNVIDIA checks the GPU rules: measurement indexes against
// reference values, no debug or CC-mode judgement (the report has none)
// and no runtime-opaque claim.
func TestAppraiseNVIDIA(t *testing.T) {
	ctx := context.Background()
	gpu := func() map[string]any {
		return map[string]any{"tee": "nvidia", "measurement": strings.Repeat("ab", 48), "insecure": false,
			"measurements": map[string]any{"1": strings.Repeat("01", 48), "2": strings.Repeat("02", 48)}}
	}
	for _, tc := range []struct {
		name   string
		ref    string
		want   ear.TrustTier
		detail string
	}{
		{"no reference values", "", ear.TrustTierAffirming, ""},
		{"listed indexes match", "nvidia: {measurements: {\"2\": [" + strings.Repeat("02", 48) + "]}}\n", ear.TrustTierAffirming, ""},
		{"index differs", "nvidia: {measurements: {\"1\": [" + strings.Repeat("0A", 48) + "], \"2\": [" + strings.Repeat("02", 48) + "]}}\n", ear.TrustTierWarning, "index 1 is " + strings.Repeat("01", 48)},
		{"index absent", "nvidia: {measurements: {\"3\": [" + strings.Repeat("03", 48) + "]}}\n", ear.TrustTierWarning, "index 3 is absent"},
		{"whole measurement pinned elsewhere", "measurements: [{tee: nvidia, name: h100-550.90, value: " + strings.Repeat("cd", 48) + "}]\n", ear.TrustTierWarning, "not a reference measurement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(ctx, Config{Reference: reference(t, tc.ref)})
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Appraise(ctx, gpu())
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want {
				t.Errorf("status = %v, want %v; checks %+v", got.Status, tc.want, got.Checks)
			}
			for _, c := range got.Checks {
				if c.Status == "failed" && !strings.Contains(c.Detail, tc.detail) {
					t.Errorf("check %s: %q does not name %q", c.Name, c.Detail, tc.detail)
				}
				if c.Name == "debug disabled" && c.Status != "skipped" {
					t.Errorf("debug judged for a GPU: %+v", c)
				}
			}
			if tv := got.TrustVector; tv.RuntimeOpaque != 0 || tv.Configuration != 0 {
				t.Errorf("trust vector %+v: want no runtime-opaque or configuration claim", tv)
			}
		})
	}
	for _, doc := range []string{"nvidia: {measurements: {\"0\": [" + strings.Repeat("00", 48) + "]}}\n", "nvidia: {measurements: {\"1\": [abcd]}}\n", "nvidia: {measurements: {\"01\": [" + strings.Repeat("00", 48) + "]}}\n"} {
		if _, err := ParseReferenceValues([]byte(doc)); err == nil {
			t.Errorf("accepted %q", doc)
		}
	}
}
