package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/worker"
)

// The end-to-end runs (key brokers over HTTP, DuckDB, verification) are in
// cmd/kura/internal/cli's TestCleanRoom*; these are the refusals that happen before
// a run attests.
func TestRunRefusesBeforeAttesting(t *testing.T) {
	ctx := context.Background()
	a, err := sim.NewAttester(sim.AttesterConfig{Measurement: make([]byte, sim.MeasurementSize)})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		file []byte
		want error
	}{
		"not a collaboration": {[]byte(`{"kura_collaboration":`), collab.ErrMalformedCollaboration},
		"empty":               {nil, collab.ErrMalformedCollaboration},
	} {
		out, err := worker.Run(ctx, worker.Config{Collaboration: c.file, Analysis: "x", Attester: a})
		if !errors.Is(err, c.want) || out != nil {
			t.Errorf("%s: %v, %+v", name, err, out)
		}
	}
	// A start announcement that fails stops the run before it attests, and
	// the announcement is signed by the run's key.
	file := testCollaboration(t)
	var announced *result.File
	_, err = worker.Run(ctx, worker.Config{Collaboration: file, Analysis: "visitors_by_age", Attester: a,
		OnStart: func(_ context.Context, f *result.File) error { announced = f; return errors.New("log unreachable") }})
	if err == nil || !strings.Contains(err.Error(), "log unreachable") {
		t.Fatalf("failed announcement: %v", err)
	}
	rc, err := result.CheckSigned(announced)
	if err != nil || rc.Analysis != "visitors_by_age" {
		t.Errorf("announcement: %+v, %v", rc, err)
	}
	if _, err := worker.Run(ctx, worker.Config{Collaboration: file, Analysis: "nope", Attester: a}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown analysis: %v", err)
	}
}

// testCollaboration is collab's example manifest as version 1 of a
// collaboration, not approved by anyone.
func testCollaboration(t *testing.T) []byte {
	t.Helper()
	m, err := collab.LoadManifest("../collab/testdata/example/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := collab.New(m)
	if err != nil {
		t.Fatal(err)
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}
