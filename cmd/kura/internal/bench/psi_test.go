package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// TestPSI runs a small kura bench psi: the intersection equals the
// plaintext join (PSI checks it) and the report is complete.
func TestPSI(t *testing.T) {
	var out bytes.Buffer
	if err := PSI(context.Background(), PSIConfig{Rows: 500, Overlap: 0.3, JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var r PSIReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Intersection != 150 || r.WireBytes < 3*500*32 || r.ElementsPerCoreS <= 0 {
		t.Errorf("report = %+v", r)
	}
	if err := PSI(context.Background(), PSIConfig{Rows: 0}, &out); err == nil {
		t.Error("no rows: accepted")
	}
}
