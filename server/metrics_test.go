package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store"
)

type sinkFunc func(context.Context, *store.AuditRecord) error

func (f sinkFunc) Record(ctx context.Context, r *store.AuditRecord) error { return f(ctx, r) }

// TestAuditSink: every decision is counted by decision and reason class and
// forwarded to the next sink, whose error comes back.
func TestAuditSink(t *testing.T) {
	m := newMetrics()
	var forwarded []string
	boom := errors.New("log unavailable")
	next := sinkFunc(func(_ context.Context, r *store.AuditRecord) error {
		forwarded = append(forwarded, r.Resource)
		if r.Resource == "fail/x/y" {
			return boom
		}
		return nil
	})
	sink := m.AuditSink(next)
	recs := []*store.AuditRecord{
		{Decision: store.DecisionReleased, Reason: "policy allowed", Resource: "a/b/c"},
		{Decision: store.DecisionRefused, Reason: fmt.Errorf("%w: measurement", keybroker.ErrDenied).Error(), Resource: "a/b/c"},
		{Decision: store.DecisionRefused, Reason: fmt.Errorf("%w: no token", keybroker.ErrUnauthenticated).Error(), Resource: "a/b/d"},
		{Decision: store.DecisionRefused, Reason: "disk on fire", Resource: "fail/x/y"},
	}
	for i, r := range recs {
		err := sink.Record(context.Background(), r)
		if (i == 3) != errors.Is(err, boom) {
			t.Errorf("record %d: %v", i, err)
		}
	}
	if len(forwarded) != 4 {
		t.Errorf("forwarded %v", forwarded)
	}
	for _, c := range []struct {
		decision, reason string
	}{{"released", "allowed"}, {"refused", "policy"}, {"refused", "unauthenticated"}, {"refused", "error"}} {
		if n := testutil.ToFloat64(m.releases.WithLabelValues(c.decision, c.reason)); n != 1 {
			t.Errorf("%s/%s = %v, want 1", c.decision, c.reason, n)
		}
	}
	if err := m.AuditSink(nil).Record(context.Background(), recs[0]); err != nil {
		t.Errorf("nil next: %v", err)
	}
}

func TestVerifyOutcome(t *testing.T) {
	for err, want := range map[error]string{
		nil: "verified",
		fmt.Errorf("x: %w", attestation.ErrNonce):        "invalid-nonce",
		fmt.Errorf("x: %w", attestation.ErrBadSignature): "bad-signature",
		errors.New("other"):                              "error",
	} {
		if got := VerifyOutcome(err); got != want {
			t.Errorf("VerifyOutcome(%v) = %s, want %s", err, got, want)
		}
	}
}

// TestRequestLabels: requests are labelled by route pattern and status class.
func TestRequestLabels(t *testing.T) {
	m := newMetrics()
	m.ObserveRequest(web.Event{Route: "GET /kbs/v0/resource/{repo}/{type}/{tag}", Status: 403, Duration: time.Millisecond})
	m.ObserveRequest(web.Event{Route: "GET /kbs/v0/resource/{repo}/{type}/{tag}", Status: 200, Duration: time.Millisecond})
	m.RunFinished("completed")
	n, err := testutil.GatherAndCount(m.Registry(), "kura_http_requests_total", "kura_runs_total")
	if err != nil || n != 3 {
		t.Errorf("series = %d, %v; want 3", n, err)
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP kura_runs_total Clean-room runs finished, by outcome.
# TYPE kura_runs_total counter
kura_runs_total{outcome="completed"} 1
`), "kura_runs_total"); err != nil {
		t.Error(err)
	}
}
