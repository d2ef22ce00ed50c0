package cli

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kura-cc/kura/internal/web"
)

// gatewayMetrics counts and times a gateway's requests, and nothing else:
// the labels are the gateway's route pattern (keys, attestation, or "/"
// for every sealed request) and the visible status class, never a path, a
// header or anything of a request's content.
type gatewayMetrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newGatewayMetrics() *gatewayMetrics {
	m := &gatewayMetrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kura_ai_gateway_requests_total",
			Help: "Requests answered, by the gateway's route pattern (\"/\" for sealed requests) and visible status class (2xx, 4xx, 5xx).",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kura_ai_gateway_request_duration_seconds",
			Help:    "Time to answer a request, to the end of its (possibly streamed) body, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 20), // 0.5 ms .. 4 min
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// wrap counts and times every request h answers (h must be the gateway:
// its routes are the label values), and writes web.Instrument's access
// line for each, which names the route, status and duration only.
func (m *gatewayMetrics) wrap(log *slog.Logger, h http.Handler) http.Handler {
	return web.Instrument(log, h, func(ev web.Event) {
		m.requests.WithLabelValues(ev.Route, strconv.Itoa(ev.Status/100)+"xx").Inc()
		m.latency.WithLabelValues(ev.Route).Observe(ev.Duration.Seconds())
	})
}

// handler serves the metrics in the Prometheus text format.
func (m *gatewayMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
