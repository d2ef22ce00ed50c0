package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// TestAI runs a small kura bench ai: every path works and the report is
// complete (its numbers are not judged: the machines are shared).
func TestAI(t *testing.T) {
	var out bytes.Buffer
	if err := AI(context.Background(), AIConfig{Requests: 5, Tokens: 20, Streams: 2, JSON: true}, &out); err != nil {
		t.Fatal(err)
	}
	var r AIReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Requests != 5 || r.DirectP50Ms <= 0 || r.ProxiedP50Ms <= 0 || r.DirectTPS <= 0 || r.ProxiedTPS <= 0 {
		t.Errorf("report = %+v", r)
	}
	if err := AI(context.Background(), AIConfig{Requests: 0, Tokens: 1, Streams: 1}, &out); err == nil {
		t.Error("no requests: accepted")
	}
}
