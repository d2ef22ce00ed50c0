package collab

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/appraisal"
)

func TestRunContext(t *testing.T) {
	rc := &RunContext{Version: RunContextVersion, Collaboration: "c", ManifestHash: strings.Repeat("a", 64), Analysis: "x", RunID: NewRunID(), SigningKey: bytes.Repeat([]byte{1}, 32)}
	data, err := rc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRunContext(data)
	if err != nil || got.RunID != rc.RunID || !bytes.Equal(got.SigningKey, rc.SigningKey) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	bad := [][]byte{
		nil,
		data[:len(data)-1],
		append(append([]byte(nil), data...), ' '),                                   // not canonical
		bytes.Replace(data, []byte(`{"v":1,`), []byte(`{ "v":1,`), 1),               // not canonical
		bytes.Replace(data, []byte(`"analysis"`), []byte(`"analysis2"`), 1),         // unknown field
		bytes.Replace(data, []byte(`"v":1`), []byte(`"v":2`), 1),                    // version
		bytes.Replace(data, []byte(rc.RunID), []byte(strings.ToUpper(rc.RunID)), 1), // run id case
		bytes.Repeat([]byte(" "), maxRunContext+1),
	}
	for i, b := range bad {
		if _, err := ParseRunContext(b); !errors.Is(err, ErrBadRunContext) {
			t.Errorf("case %d: %v, want ErrBadRunContext", i, err)
		}
	}
	if NewRunID() == NewRunID() {
		t.Error("run ids repeat")
	}
}

func FuzzParseRunContext(f *testing.F) {
	f.Add([]byte(`{"v":1,"collaboration":"c","manifest_hash":"` + strings.Repeat("a", 64) + `","analysis":"x","run_id":"` + strings.Repeat("b", 32) + `","signing_key":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rc, err := ParseRunContext(data)
		if err != nil {
			return
		}
		again, err := rc.Marshal()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("accepted bytes that do not re-encode identically: %q", data)
		}
	})
}

func TestCheckWorker(t *testing.T) {
	m := &Manifest{}
	m.Worker.ReferenceValues.Measurements = []appraisal.Measurement{{TEE: "snp", Value: "AB12"}, {TEE: "tdx", Value: "cd34"}}
	snpClaims := func(meas string, snp float64) map[string]any {
		return map[string]any{"measurement": meas, "snp": map[string]any{"reported_tcb": map[string]any{"snp": snp, "microcode": float64(115)}}}
	}
	if err := m.CheckWorker("snp", snpClaims("ab12", 8)); err != nil {
		t.Errorf("listed measurement (case differs): %v", err)
	}
	for name, c := range map[string]struct {
		tee    string
		claims map[string]any
	}{
		"unlisted measurement":         {"snp", snpClaims("ffff", 8)},
		"measurement of the other TEE": {"snp", snpClaims("cd34", 8)},
		"no measurement":               {"snp", map[string]any{}},
	} {
		if err := m.CheckWorker(c.tee, c.claims); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	m.Worker.ReferenceValues.SNP = &appraisal.SNPValues{MinTCB: map[string]int{"snp": 8}}
	if err := m.CheckWorker("snp", snpClaims("ab12", 7)); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Errorf("TCB below the minimum: %v", err)
	}
	if err := m.CheckWorker("snp", snpClaims("ab12", 9)); err != nil {
		t.Errorf("TCB above the minimum: %v", err)
	}
	m.Worker.ReferenceValues.TDX = &appraisal.TDXValues{TCBStatus: map[string]string{"UpToDate": "affirming", "OutOfDate": "contraindicated"}}
	if err := m.CheckWorker("tdx", map[string]any{"measurement": "cd34", "tcb_status": "UpToDate"}); err != nil {
		t.Errorf("accepted TDX status: %v", err)
	}
	if err := m.CheckWorker("tdx", map[string]any{"measurement": "cd34", "tcb_status": "OutOfDate"}); err == nil {
		t.Error("contraindicated TDX status accepted")
	}
}
