package server

// The Prometheus metrics of a kura server: HTTP requests per route,
// attestation verifications and key releases by outcome, and clean-room
// runs. Each server creates its own registry; nothing is registered
// globally. Every label value comes from a bounded set fixed in code (route
// patterns, problem kinds, decisions), never from what a client sent, and no
// metric carries a secret.

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/store"
	"github.com/kura-cc/kura/verifier"
)

// metrics is one server's set of metrics. It is safe for concurrent use.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	inFlight      prometheus.Gauge
	verifications *prometheus.CounterVec
	releases      *prometheus.CounterVec
	runs          *prometheus.CounterVec
}

// newMetrics returns a fresh set of metrics in a registry of its own, together
// with the Go runtime and process collectors.
func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kura_http_requests_total",
			Help: "HTTP requests served, by route pattern and status class (2xx, 4xx, 5xx).",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kura_http_request_duration_seconds",
			Help:    "HTTP request latency, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kura_http_requests_in_flight",
			Help: "HTTP requests being served now.",
		}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kura_verifications_total",
			Help: `Attestation verifications, by where they came from ("verifier": POST /v1/attestation/verify; "kbs": POST /kbs/v0/attest) and outcome ("verified", or the problem kind: "invalid-nonce", "bad-signature"...).`,
		}, []string{"source", "outcome"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kura_key_releases_total",
			Help: `Key-release decisions recorded in the audit trail, by decision ("released", "refused") and reason class ("allowed", "policy", "revoked", "unauthenticated", "not-found", "bad-request", "error").`,
		}, []string{"decision", "reason"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kura_runs_total",
			Help: "Clean-room runs finished, by outcome.",
		}, []string{"outcome"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.inFlight, m.verifications, m.releases, m.runs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry the metrics live in, for roles that add their
// own collectors.
func (m *metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// InFlight wraps h to count requests in flight.
func (m *metrics) InFlight(h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerInFlight(m.inFlight, h)
}

// ObserveRequest counts one served request; pass it to web.Instrument.
func (m *metrics) ObserveRequest(ev web.Event) {
	m.requests.WithLabelValues(ev.Route, strconv.Itoa(ev.Status/100)+"xx").Inc()
	m.latency.WithLabelValues(ev.Route).Observe(ev.Duration.Seconds())
}

// Verification counts one verification from source with outcome.
func (m *metrics) Verification(source, outcome string) {
	m.verifications.WithLabelValues(source, outcome).Inc()
}

// RunFinished counts one finished run.
func (m *metrics) RunFinished(outcome string) { m.runs.WithLabelValues(outcome).Inc() }

// VerifyOutcome names the outcome of a verification error with the
// verifier's problem kinds, so both sources share one vocabulary.
func VerifyOutcome(err error) string {
	switch {
	case err == nil:
		return "verified"
	case errors.Is(err, attestation.ErrMalformed):
		return "malformed-evidence"
	case errors.Is(err, attestation.ErrNonce):
		return "invalid-nonce"
	case errors.Is(err, attestation.ErrBinding):
		return "binding-mismatch"
	case errors.Is(err, attestation.ErrUntrustedRoot):
		return "untrusted-root"
	case errors.Is(err, attestation.ErrBadSignature):
		return "bad-signature"
	case errors.Is(err, attestation.ErrCollateralExpired):
		return "collateral-expired"
	case errors.Is(err, attestation.ErrCollateralUnavailable):
		return "collateral-unavailable"
	}
	return "error"
}

// Attester wraps the key broker's evidence verifier to count its
// verifications (source "kbs").
func (m *metrics) Attester(next keybroker.Attester) keybroker.Attester {
	return countingAttester{m, next}
}

type countingAttester struct {
	m    *metrics
	next keybroker.Attester
}

func (a countingAttester) Verify(ctx context.Context, b *attestation.Bundle, opts verifier.Options) (*verifier.Report, error) {
	rep, err := a.next.Verify(ctx, b, opts)
	a.m.Verification("kbs", VerifyOutcome(err))
	return rep, err
}

// AuditSink returns a key-broker audit sink that counts every decision and
// then hands it to next (nil: none), whose error it returns.
func (m *metrics) AuditSink(next keybroker.AuditSink) keybroker.AuditSink {
	return countingSink{m, next}
}

type countingSink struct {
	m    *metrics
	next keybroker.AuditSink
}

func (s countingSink) Record(ctx context.Context, rec *store.AuditRecord) error {
	s.m.releases.WithLabelValues(rec.Decision, releaseReason(rec)).Inc()
	if s.next == nil {
		return nil
	}
	return s.next.Record(ctx, rec)
}

// releaseReason classes a decision by the sentinel its reason starts with.
func releaseReason(rec *store.AuditRecord) string {
	if rec.Decision == store.DecisionReleased {
		return "allowed"
	}
	for _, c := range []struct {
		err  error
		name string
	}{
		{keybroker.ErrApprovalRevoked, "revoked"},
		{keybroker.ErrDenied, "policy"},
		{keybroker.ErrUnauthenticated, "unauthenticated"},
		{keybroker.ErrNotFound, "not-found"},
		{keybroker.ErrBadRequest, "bad-request"},
	} {
		if strings.HasPrefix(rec.Reason, c.err.Error()) {
			return c.name
		}
	}
	return "error"
}
