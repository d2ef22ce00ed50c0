package collateral

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// vendor is a fake vendor server on loopback. Each request is answered by
// the next handler in script; once the script is exhausted, by the last.
type vendor struct {
	srv  *httptest.Server
	hits atomic.Int32

	mu     sync.Mutex
	script []http.HandlerFunc
	paths  []string
}

func newVendor(t *testing.T, script ...http.HandlerFunc) *vendor {
	v := &vendor{script: script}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(v.hits.Add(1))
		v.mu.Lock()
		v.paths = append(v.paths, r.URL.RequestURI())
		h := v.script[min(n, len(v.script))-1]
		v.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

// rewrite sends every vendor URL to the fake server.
func (v *vendor) rewrite(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return v.srv.URL + p.RequestURI()
}

func ok(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("TCB-Info-Issuer-Chain", "chain")
		w.Header().Set("Set-Cookie", "x=y")
		fmt.Fprint(w, body)
	}
}

func status(code int, retryAfter string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		http.Error(w, "nope", code)
	}
}

// fakeSleep records the delays asked for and returns at once.
type fakeSleep struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.mu.Lock()
	f.delays = append(f.delays, d)
	f.mu.Unlock()
	return ctx.Err()
}

func (v *vendor) online(f *fakeSleep, cfg OnlineConfig) *Online {
	cfg.Rewrite = v.rewrite
	if cfg.RateLimits == nil {
		// No limit, so KDS retries are not held 10 s by the default.
		cfg.RateLimits = map[string]RateLimit{"kdsintf.amd.com": {}}
	}
	if f != nil {
		cfg.Sleep = f.sleep
	}
	return NewOnline(cfg)
}

func TestOnlineRetry503(t *testing.T) {
	v := newVendor(t, status(503, ""), status(502, ""), ok("tcb"))
	var f fakeSleep
	h, body, err := v.online(&f, OnlineConfig{}).Get(t.Context(), tcbURL)
	if err != nil || string(body) != "tcb" {
		t.Fatalf("Get = %q, %v", body, err)
	}
	if got := v.hits.Load(); got != 3 {
		t.Errorf("hits = %d, want 3", got)
	}
	if len(f.delays) != 2 {
		t.Fatalf("delays = %v, want 2", f.delays)
	}
	// Backoff doubles from 1 s, jittered into [d/2, d].
	for i, d := range f.delays {
		hi := time.Second << i
		if d < hi/2 || d > hi {
			t.Errorf("delay %d = %s, want in [%s, %s]", i, d, hi/2, hi)
		}
	}
	if h.Get("Tcb-Info-Issuer-Chain") != "chain" || h.Get("Set-Cookie") != "" {
		t.Errorf("header = %v", h)
	}
	if v.paths[0] != "/tdx/certification/v4/tcb?fmspc=50806f000000" {
		t.Errorf("fetched %q", v.paths[0])
	}
}

func TestOnlineRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, value string
		want        time.Duration
	}{
		{"seconds", "7", 7 * time.Second},
		{"date", now.Add(20 * time.Second).Format(http.TimeFormat), 20 * time.Second},
		{"past date", now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVendor(t, status(429, tt.value), ok("x"))
			var f fakeSleep
			_, _, err := v.online(&f, OnlineConfig{Now: func() time.Time { return now }}).Get(t.Context(), arkURL)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.delays) != 1 || f.delays[0] != tt.want {
				t.Errorf("delays = %v, want [%s]", f.delays, tt.want)
			}
		})
	}
}

func TestOnlineRetryAfterTooLong(t *testing.T) {
	v := newVendor(t, status(503, "3600"), ok("x"))
	var f fakeSleep
	_, _, err := v.online(&f, OnlineConfig{}).Get(t.Context(), arkURL)
	if !errors.Is(err, attestation.ErrCollateralUnavailable) || !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Errorf("Get = %v", err)
	}
	if v.hits.Load() != 1 || len(f.delays) != 0 {
		t.Errorf("hits = %d, delays = %v", v.hits.Load(), f.delays)
	}
}

func TestOnlineNotRetried(t *testing.T) {
	for _, code := range []int{404, 400, 403} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			v := newVendor(t, status(code, ""), ok("x"))
			var f fakeSleep
			_, _, err := v.online(&f, OnlineConfig{}).Get(t.Context(), vcekURL)
			if !errors.Is(err, attestation.ErrCollateralUnavailable) || !strings.Contains(err.Error(), fmt.Sprint(code)) {
				t.Errorf("Get = %v, want ErrCollateralUnavailable with status", err)
			}
			if v.hits.Load() != 1 || len(f.delays) != 0 {
				t.Errorf("hits = %d, delays = %v; want no retry", v.hits.Load(), f.delays)
			}
		})
	}
}

func TestOnlineGivesUp(t *testing.T) {
	v := newVendor(t, status(500, ""))
	var f fakeSleep
	_, _, err := v.online(&f, OnlineConfig{Attempts: 4}).Get(t.Context(), arkURL)
	if !errors.Is(err, attestation.ErrCollateralUnavailable) || !strings.Contains(err.Error(), "after 4 attempts") {
		t.Errorf("Get = %v", err)
	}
	if v.hits.Load() != 4 {
		t.Errorf("hits = %d, want 4", v.hits.Load())
	}
}

func TestOnlineNetworkErrorRetried(t *testing.T) {
	v := newVendor(t, ok("x"))
	addr := v.srv.URL
	v.srv.Close()
	var f fakeSleep
	o := NewOnline(OnlineConfig{
		Sleep:      f.sleep,
		Rewrite:    func(string) string { return addr + "/x" },
		RateLimits: map[string]RateLimit{"kdsintf.amd.com": {}},
	})
	if _, _, err := o.Get(t.Context(), arkURL); !errors.Is(err, attestation.ErrCollateralUnavailable) {
		t.Errorf("Get = %v", err)
	}
	if len(f.delays) != 2 {
		t.Errorf("delays = %v, want 2 retries", f.delays)
	}
}

func TestOnlineBodyLimit(t *testing.T) {
	v := newVendor(t, ok(strings.Repeat("x", maxBodySize+1)))
	var f fakeSleep
	_, _, err := v.online(&f, OnlineConfig{}).Get(t.Context(), arkURL)
	if !errors.Is(err, attestation.ErrCollateralUnavailable) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Get = %v", err)
	}
	if v.hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", v.hits.Load())
	}
}

func TestOnlineRefusesPlainHTTP(t *testing.T) {
	v := newVendor(t, ok("x"))
	if _, _, err := v.online(nil, OnlineConfig{}).Get(t.Context(), "http://kdsintf.amd.com/vcek/v1/Milan/cert_chain"); err == nil {
		t.Error("http URL fetched")
	}
	if v.hits.Load() != 0 {
		t.Error("server hit")
	}
}

// TestOnlineRateLimitKDS checks that KDS requests share one limiter: with one
// token per hour, only one of several concurrent requests reaches the
// server and the rest wait until cancelled, while another host is not held up.
func TestOnlineRateLimitKDS(t *testing.T) {
	v := newVendor(t, ok("x"))
	o := v.online(nil, OnlineConfig{RateLimits: map[string]RateLimit{
		"kdsintf.amd.com": {Interval: time.Hour, Burst: 1},
	}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, _, err := o.Get(ctx, fmt.Sprintf("https://kdsintf.amd.com/vcek/v1/Milan/%d", i))
			errs <- err
		}()
	}
	if err := <-errs; err != nil {
		t.Fatalf("first KDS request: %v", err)
	}
	// Another host has its own limiter.
	if _, _, err := o.Get(t.Context(), tcbURL); err != nil {
		t.Fatalf("Intel request: %v", err)
	}
	cancel()
	for range n - 1 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("waiting KDS request = %v, want context.Canceled", err)
		}
	}
	if got := v.hits.Load(); got != 2 {
		t.Errorf("hits = %d, want 2 (one KDS, one Intel)", got)
	}
	// A deadline shorter than the wait fails at once.
	dctx, dcancel := context.WithTimeout(t.Context(), time.Minute)
	defer dcancel()
	if _, _, err := o.Get(dctx, arkURL); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with short deadline = %v", err)
	}
}

// TestOnlineCancelDuringBackoff uses the real sleep with an hour's backoff:
// cancelling must end the wait.
func TestOnlineCancelDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	v := newVendor(t, func(w http.ResponseWriter, r *http.Request) {
		cancel()
		http.Error(w, "busy", http.StatusServiceUnavailable)
	})
	o := v.online(nil, OnlineConfig{BaseDelay: time.Hour, MaxDelay: 2 * time.Hour})
	_, _, err := o.Get(ctx, arkURL)
	if !errors.Is(err, context.Canceled) || errors.Is(err, attestation.ErrCollateralUnavailable) {
		t.Errorf("Get = %v, want context.Canceled", err)
	}
}

func TestOnlineLogsNoBody(t *testing.T) {
	const secret = "BODY-MUST-NOT-BE-LOGGED"
	v := newVendor(t, status(503, "0"), ok(secret))
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if _, _, err := v.online(&fakeSleep{}, OnlineConfig{Logger: log}).Get(t.Context(), tcbURL); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Errorf("log has body: %s", out)
	}
	if !strings.Contains(out, "status=503") || !strings.Contains(out, "status=200") || !strings.Contains(out, "fmspc=50806f000000") {
		t.Errorf("log lacks attempts: %s", out)
	}
}
