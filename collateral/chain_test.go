package collateral

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// onlineConfig fetches from v with no backoff or rate limit.
func (v *vendor) onlineConfig() OnlineConfig {
	var f fakeSleep
	return OnlineConfig{
		Rewrite:    v.rewrite,
		Sleep:      f.sleep,
		RateLimits: map[string]RateLimit{"kdsintf.amd.com": {}},
	}
}

func newChain(t *testing.T, cfg Config) *Chain {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChainCacheHitAvoidsNetwork(t *testing.T) {
	v := newVendor(t, ok("from network"))
	cache := t.TempDir()
	if err := NewDir(cache).Put(tcbURL, intelHeader(), []byte("from cache")); err != nil {
		t.Fatal(err)
	}
	c := newChain(t, Config{CacheDir: cache, Online: true, Fetch: v.onlineConfig()})
	h, body, err := c.Get(t.Context(), tcbURL)
	if err != nil || string(body) != "from cache" || h.Get("Tcb-Info-Issuer-Chain") == "" {
		t.Fatalf("Get = %v, %q, %v", h, body, err)
	}
	if v.hits.Load() != 0 {
		t.Errorf("network hit %d times", v.hits.Load())
	}
}

func TestChainOnlineFillsCaches(t *testing.T) {
	v := newVendor(t, ok("fetched"))
	cache := t.TempDir()
	c := newChain(t, Config{CacheDir: cache, Online: true, Fetch: v.onlineConfig()})
	for range 3 {
		h, body, err := c.Get(t.Context(), tcbURL)
		if err != nil || string(body) != "fetched" || h.Get("Tcb-Info-Issuer-Chain") != "chain" {
			t.Fatalf("Get = %v, %q, %v", h, body, err)
		}
		body[0] = 'X' // callers get copies
	}
	if v.hits.Load() != 1 {
		t.Errorf("hits = %d, want 1 (memory cache)", v.hits.Load())
	}
	// The fetch was written to the disk cache, headers included, and a
	// later offline-only chain finds it there.
	c2 := newChain(t, Config{CacheDir: cache})
	h, body, err := c2.Get(t.Context(), tcbURL)
	if err != nil || string(body) != "fetched" || h.Get("Tcb-Info-Issuer-Chain") != "chain" {
		t.Errorf("from disk cache: %v, %q, %v", h, body, err)
	}
}

func TestChainOfflineDir(t *testing.T) {
	b1, b2 := t.TempDir(), t.TempDir()
	if err := NewDir(b2).Put(arkURL, nil, []byte("ark")); err != nil {
		t.Fatal(err)
	}
	c := newChain(t, Config{CacheDir: t.TempDir(), OfflineDirs: []string{b1, b2}})
	if _, body, err := c.Get(t.Context(), arkURL); err != nil || string(body) != "ark" {
		t.Errorf("Get = %q, %v", body, err)
	}
}

func TestChainOnlineDisabledError(t *testing.T) {
	cache, bundle := t.TempDir(), t.TempDir()
	c := newChain(t, Config{CacheDir: cache, OfflineDirs: []string{bundle}})
	_, _, err := c.Get(t.Context(), vcekURL)
	if !errors.Is(err, attestation.ErrCollateralUnavailable) {
		t.Fatalf("Get = %v, want ErrCollateralUnavailable", err)
	}
	for _, want := range []string{
		vcekURL,
		"not in cache " + cache,
		"not in offline bundle " + bundle,
		"online fetching disabled (--offline)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}

	_, _, err = newChain(t, Config{}).Get(t.Context(), vcekURL)
	if !errors.Is(err, attestation.ErrCollateralUnavailable) || !strings.Contains(err.Error(), "no cache or offline bundle configured") {
		t.Errorf("empty chain: %v", err)
	}
}

func TestChainOnlineFailureNamed(t *testing.T) {
	v := newVendor(t, status(404, ""))
	c := newChain(t, Config{Online: true, Fetch: v.onlineConfig()})
	_, _, err := c.Get(t.Context(), vcekURL)
	if !errors.Is(err, attestation.ErrCollateralUnavailable) || !strings.Contains(err.Error(), "online fetch failed: HTTP 404") {
		t.Errorf("Get = %v", err)
	}
}

func TestChainMemoryTTLAndBound(t *testing.T) {
	v := newVendor(t, ok("x"))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newChain(t, Config{Online: true, Fetch: v.onlineConfig(), Now: clock, MemoryTTL: time.Minute, MemoryEntries: 2})
	get := func(u string) {
		t.Helper()
		if _, _, err := c.Get(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	get(tcbURL)
	get(tcbURL)
	if v.hits.Load() != 1 {
		t.Fatalf("hits = %d, want 1", v.hits.Load())
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	get(tcbURL) // expired
	if v.hits.Load() != 2 {
		t.Fatalf("after TTL hits = %d, want 2", v.hits.Load())
	}
	get(arkURL)
	get(vcekURL) // evicts tcbURL, the least recently used
	get(arkURL)
	if v.hits.Load() != 4 {
		t.Fatalf("hits = %d, want 4", v.hits.Load())
	}
	get(tcbURL)
	if v.hits.Load() != 5 {
		t.Errorf("evicted entry: hits = %d, want 5", v.hits.Load())
	}
}

func TestChainStaleCache(t *testing.T) {
	cache := t.TempDir()
	if err := NewDir(cache).Put(tcbURL, nil, []byte("old")); err != nil {
		t.Fatal(err)
	}
	later := func() time.Time { return time.Now().Add(48 * time.Hour) }

	v := newVendor(t, ok("new"))
	c := newChain(t, Config{CacheDir: cache, Online: true, Fetch: v.onlineConfig(), Now: later})
	if _, body, err := c.Get(t.Context(), tcbURL); err != nil || string(body) != "new" {
		t.Errorf("refresh: %q, %v", body, err)
	}
	if _, body, _ := NewDir(cache).Get(t.Context(), tcbURL); string(body) != "new" {
		t.Errorf("cache holds %q after refresh", body)
	}

	// When the refresh fails the old entry is served.
	down := newVendor(t, status(404, ""))
	c = newChain(t, Config{CacheDir: cache, Online: true, Fetch: down.onlineConfig(), Now: later})
	if _, body, err := c.Get(t.Context(), tcbURL); err != nil || string(body) != "new" {
		t.Errorf("stale fallback: %q, %v", body, err)
	}
	if down.hits.Load() != 1 {
		t.Errorf("hits = %d, want 1", down.hits.Load())
	}
}

func TestChainConcurrentGetsShareFetch(t *testing.T) {
	release := make(chan struct{})
	v := newVendor(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		ok("x")(w, r)
	})
	c := newChain(t, Config{Online: true, Fetch: v.onlineConfig()})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, body, err := c.Get(t.Context(), vcekURL)
			if err == nil && string(body) != "x" {
				err = errors.New("wrong body " + string(body))
			}
			errs <- err
		})
	}
	for v.hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := v.hits.Load(); got != 1 {
		t.Errorf("hits = %d, want 1", got)
	}
}

func TestChainContextCancel(t *testing.T) {
	v := newVendor(t, ok("x"))
	cfg := v.onlineConfig()
	cfg.RateLimits = map[string]RateLimit{"kdsintf.amd.com": {Interval: time.Hour, Burst: 1}}
	c := newChain(t, Config{Online: true, Fetch: cfg, MemoryEntries: -1})
	if _, _, err := c.Get(t.Context(), arkURL); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		time.Sleep(10 * time.Millisecond)
		cancel()
	}()
	_, _, err := c.Get(ctx, arkURL) // waits on the limiter until cancelled
	if !errors.Is(err, context.Canceled) || errors.Is(err, attestation.ErrCollateralUnavailable) {
		t.Errorf("Get = %v, want context.Canceled", err)
	}
}

func TestNewOfflineDirMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	if _, err := New(Config{OfflineDirs: []string{missing}}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("New = %v", err)
	}
}

// TestChainLeaderCancelled checks that a Get waiting on another caller's
// lookup retries, rather than failing, when that caller gives up.
func TestChainLeaderCancelled(t *testing.T) {
	started := make(chan struct{})
	v := newVendor(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // held until the first caller gives up
	}, ok("x"))
	c := newChain(t, Config{Online: true, Fetch: v.onlineConfig()})
	lctx, cancel := context.WithCancel(t.Context())
	leader := make(chan error, 1)
	go func() {
		_, _, err := c.Get(lctx, arkURL)
		leader <- err
	}()
	<-started
	follower := make(chan error, 1)
	go func() {
		_, _, err := c.Get(t.Context(), arkURL)
		follower <- err
	}()
	for { // wait until the follower is waiting on the leader's lookup
		c.mu.Lock()
		n := len(c.calls)
		c.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Errorf("leader = %v", err)
	}
	if err := <-follower; err != nil {
		t.Errorf("follower = %v", err)
	}
}

func TestChainLogs(t *testing.T) {
	bundle := t.TempDir()
	if err := NewDir(bundle).Put(arkURL, nil, []byte("SECRET-BODY")); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newChain(t, Config{OfflineDirs: []string{bundle}, Logger: log})
	for range 2 {
		if _, _, err := c.Get(t.Context(), arkURL); err != nil {
			t.Fatal(err)
		}
	}
	c.Get(t.Context(), vcekURL)
	out := buf.String()
	for _, want := range []string{"source=offline", "source=memory", "collateral unavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SECRET-BODY") {
		t.Errorf("log has body:\n%s", out)
	}
}
