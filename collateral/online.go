package collateral

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kura-cc/kura/attestation"
)

// kdsHost is AMD's Key Distribution Service host, which allows about one
// VCEK request per 10 seconds per client address.
const kdsHost = "kdsintf.amd.com"

// RateLimit bounds the requests sent to one host: Burst requests at once,
// then one per Interval. An Interval of zero or less means no limit.
type RateLimit struct {
	Interval time.Duration
	Burst    int
}

// OnlineConfig configures Online. The zero value is ready to use.
type OnlineConfig struct {
	// Client sends the requests. Nil means a client with
	// http.DefaultTransport.
	Client *http.Client
	// Rewrite, if set, maps a vendor URL to the URL actually fetched: a
	// mirror, or an httptest server in tests. Rate limits, errors and logs
	// still use the vendor URL.
	Rewrite func(url string) string
	// Timeout bounds each attempt, reading the body included. Zero means
	// 10 s.
	Timeout time.Duration
	// Attempts is the most requests made for one Get. Zero means 3.
	Attempts int
	// BaseDelay is the backoff before the second attempt; it doubles for
	// each further attempt, with jitter (a delay d becomes a random one in
	// [d/2, d]). A Retry-After header replaces the backoff. Zero means 1 s.
	BaseDelay time.Duration
	// MaxDelay caps the backoff. When a server's Retry-After asks for a
	// longer wait, Get gives up instead of waiting. Zero means 30 s.
	MaxDelay time.Duration
	// RateLimits maps a lower-case host name (no port) to its limit,
	// overriding the defaults: 1 request per 10 s, burst 1, for AMD KDS
	// (kdsintf.amd.com, which allows about one VCEK request per 10 s) and
	// 10 per second, burst 10, for every other host.
	RateLimits map[string]RateLimit
	// Sleep waits for d or until ctx is done, returning ctx.Err() then. Nil
	// means a timer. Tests inject a fake to skip the backoff.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock used to read Retry-After dates. Nil means time.Now.
	Now func() time.Time
	// Logger receives one record per HTTP attempt (URL, status, attempt),
	// never a body. Nil discards.
	Logger *slog.Logger
}

// Online fetches collateral from its vendor over HTTPS, retrying 429, 5xx
// and network failures with exponential backoff and keeping to per-host
// rate limits. It is safe for concurrent use.
type Online struct {
	client    *http.Client
	rewrite   func(string) string
	timeout   time.Duration
	attempts  int
	baseDelay time.Duration
	maxDelay  time.Duration
	limits    map[string]RateLimit
	sleep     func(context.Context, time.Duration) error
	now       func() time.Time
	log       *slog.Logger

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

// NewOnline returns an Online configured by cfg, with defaults filled in.
func NewOnline(cfg OnlineConfig) *Online {
	o := &Online{
		client:    cfg.Client,
		rewrite:   cfg.Rewrite,
		timeout:   orDefault(cfg.Timeout, 10*time.Second),
		attempts:  orDefault(cfg.Attempts, 3),
		baseDelay: orDefault(cfg.BaseDelay, time.Second),
		maxDelay:  orDefault(cfg.MaxDelay, 30*time.Second),
		limits:    map[string]RateLimit{kdsHost: {Interval: 10 * time.Second, Burst: 1}},
		sleep:     cfg.Sleep,
		now:       cfg.Now,
		log:       orDiscard(cfg.Logger),
		limiters:  make(map[string]*rate.Limiter),
	}
	for h, l := range cfg.RateLimits {
		o.limits[strings.ToLower(h)] = l
	}
	if o.client == nil {
		o.client = &http.Client{}
	}
	if o.sleep == nil {
		o.sleep = sleepCtx
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// Get fetches url. A 404, another non-retryable status, or running out of
// attempts yields an error wrapping attestation.ErrCollateralUnavailable;
// a cancelled ctx yields an error wrapping ctx.Err(). The header holds only
// the headers worth keeping (see Dir.Put).
func (o *Online) Get(ctx context.Context, url string) (http.Header, []byte, error) {
	h, body, err := o.fetch(ctx, url)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("collateral: fetching %s: %w", url, err)
		}
		return nil, nil, fmt.Errorf("%w: %s: %w", attestation.ErrCollateralUnavailable, url, err)
	}
	return h, body, nil
}

// fetch is Get without the URL and sentinel in its errors.
func (o *Online) fetch(ctx context.Context, rawURL string) (http.Header, []byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, nil, errors.New("only https URLs are fetched")
	}
	host := strings.ToLower(u.Hostname())
	lim := o.limiter(host)
	target := rawURL
	if o.rewrite != nil {
		target = o.rewrite(rawURL)
	}
	for attempt := 1; ; attempt++ {
		if err := lim.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, nil, fmt.Errorf("waiting for %s rate limit: %w", host, ctx.Err())
			}
			// The limiter refuses at once when the wait would outlast
			// ctx's deadline.
			return nil, nil, fmt.Errorf("waiting for %s rate limit: %w: %v", host, context.DeadlineExceeded, err)
		}
		h, body, res := o.attempt(ctx, target)
		lvl := slog.LevelInfo
		if res.err != nil {
			lvl = slog.LevelWarn
		}
		o.log.LogAttrs(ctx, lvl, "collateral fetch", slog.String("url", rawURL), slog.Int("status", res.status),
			slog.Int("attempt", attempt), slog.Int("bytes", len(body)), errAttr(res.err))
		if res.err == nil {
			return h, body, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if !res.retry || attempt >= o.attempts {
			if res.retry {
				return nil, nil, fmt.Errorf("%w (gave up after %d attempts)", res.err, attempt)
			}
			return nil, nil, res.err
		}
		delay := o.backoff(attempt)
		if res.retryAfter >= 0 {
			if res.retryAfter > o.maxDelay {
				return nil, nil, fmt.Errorf("%w; server asked to retry after %s", res.err, res.retryAfter)
			}
			delay = res.retryAfter
		}
		if err := o.sleep(ctx, delay); err != nil {
			return nil, nil, err
		}
	}
}

// result describes one attempt's failure.
type result struct {
	status     int
	err        error
	retry      bool
	retryAfter time.Duration // <0: no Retry-After
}

func (o *Online) attempt(ctx context.Context, target string) (http.Header, []byte, result) {
	res := result{retryAfter: -1}
	actx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, target, nil)
	if err != nil {
		res.err = err
		return nil, nil, res
	}
	resp, err := o.client.Do(req)
	if err != nil {
		res.err, res.retry = err, true
		return nil, nil, res
	}
	defer resp.Body.Close()
	res.status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
		res.err = fmt.Errorf("HTTP %s", resp.Status)
		switch c := resp.StatusCode; {
		case c == http.StatusTooManyRequests || c == http.StatusRequestTimeout || c >= 500:
			res.retry = true
			res.retryAfter = o.parseRetryAfter(resp.Header.Get("Retry-After"))
		}
		return nil, nil, res
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
	if err != nil {
		res.err, res.retry = fmt.Errorf("reading body: %w", err), true
		return nil, nil, res
	}
	if len(body) > maxBodySize {
		res.err = fmt.Errorf("body larger than %d bytes", maxBodySize)
		return nil, nil, res
	}
	return keepHeaders(resp.Header), body, res
}

// backoff returns the jittered delay after the given failed attempt.
func (o *Online) backoff(attempt int) time.Duration {
	d := o.baseDelay
	for i := 1; i < attempt && d < o.maxDelay; i++ {
		d *= 2
	}
	d = min(d, o.maxDelay)
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads a Retry-After value, in seconds or as an HTTP date;
// it returns -1 when v is empty or unreadable.
func (o *Online) parseRetryAfter(v string) time.Duration {
	if v == "" {
		return -1
	}
	if s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
		if s < 0 {
			return -1
		}
		if s > int64(24*time.Hour/time.Second) {
			return 24 * time.Hour
		}
		return time.Duration(s) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return -1
	}
	return max(t.Sub(o.now()), 0)
}

// limiter returns host's limiter, creating it on first use.
func (o *Online) limiter(host string) *rate.Limiter {
	o.mu.Lock()
	defer o.mu.Unlock()
	if l, ok := o.limiters[host]; ok {
		return l
	}
	rl, ok := o.limits[host]
	if !ok {
		rl = RateLimit{Interval: 100 * time.Millisecond, Burst: 10}
	}
	every := rate.Inf
	if rl.Interval > 0 {
		every = rate.Every(rl.Interval)
	}
	l := rate.NewLimiter(every, max(rl.Burst, 1))
	o.limiters[host] = l
	return l
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// orDefault returns v, or def when v is zero or negative.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.Attr{}
	}
	return slog.String("err", err.Error())
}
