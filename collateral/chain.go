package collateral

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// Config configures the Getter New builds. The zero value looks nowhere but
// memory and so finds nothing; set CacheDir, OfflineDirs or Online.
type Config struct {
	// CacheDir is the on-disk cache: read first, and written with every
	// successful online fetch. It is created on first write. Empty means no
	// disk cache.
	CacheDir string
	// CacheMaxAge applies when Online is set: a cache entry older than this
	// is looked up again (offline bundles, then online), and still served
	// if that fails. Zero means 24 h; negative means entries never age.
	CacheMaxAge time.Duration
	// OfflineDirs are read-only bundle directories, looked in after the
	// cache, in order. Each must exist when New is called.
	OfflineDirs []string
	// Online enables fetching from the vendors' servers. Off by default.
	Online bool
	// Fetch configures online fetching. Its Logger defaults to Logger.
	Fetch OnlineConfig
	// MemoryEntries bounds the in-memory cache, least recently used
	// evicted first. Zero means 256; negative disables it.
	MemoryEntries int
	// MemoryTTL is how long an entry stays in memory. Zero means 1 h.
	MemoryTTL time.Duration
	// Now is the clock for MemoryTTL and CacheMaxAge. Nil means time.Now.
	Now func() time.Time
	// Logger receives one record per lookup (URL, source) and per HTTP
	// attempt (URL, status), never a body. Nil discards.
	Logger *slog.Logger
}

// Chain is the attestation.Getter kura uses: memory, then the disk cache,
// then offline bundles, then (when enabled) the network. Concurrent Gets of
// one URL share one lookup. It is safe for concurrent use.
type Chain struct {
	mem     *memCache
	cache   *Dir
	maxAge  time.Duration
	offline []*Dir
	online  *Online // nil when disabled
	now     func() time.Time
	log     *slog.Logger

	mu    sync.Mutex
	calls map[string]*call
}

var (
	_ attestation.Getter = (*Chain)(nil)
	_ attestation.Getter = (*Dir)(nil)
	_ attestation.Getter = (*Online)(nil)
)

// New returns the Chain cfg describes. It fails when an offline directory
// does not exist.
func New(cfg Config) (*Chain, error) {
	c := &Chain{
		maxAge: orDefault(cfg.CacheMaxAge, 24*time.Hour),
		now:    cfg.Now,
		log:    orDiscard(cfg.Logger),
		calls:  make(map[string]*call),
	}
	if cfg.CacheMaxAge < 0 {
		c.maxAge = 0
	}
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.MemoryEntries >= 0 {
		c.mem = &memCache{
			max: orDefault(cfg.MemoryEntries, 256),
			ttl: orDefault(cfg.MemoryTTL, time.Hour),
			ll:  list.New(),
			m:   make(map[string]*list.Element),
		}
	}
	if cfg.CacheDir != "" {
		c.cache = NewDir(cfg.CacheDir)
	}
	for _, d := range cfg.OfflineDirs {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, fmt.Errorf("collateral: offline bundle: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("collateral: offline bundle %s is not a directory", d)
		}
		c.offline = append(c.offline, NewDir(d))
	}
	if cfg.Online {
		fc := cfg.Fetch
		if fc.Logger == nil {
			fc.Logger = cfg.Logger
		}
		c.online = NewOnline(fc)
	}
	return c, nil
}

// Get returns the collateral at url from the first place that has it. When
// none has, the error wraps attestation.ErrCollateralUnavailable and names
// every place looked; when ctx ends first, it wraps ctx.Err().
func (c *Chain) Get(ctx context.Context, url string) (http.Header, []byte, error) {
	if h, b, ok := c.mem.get(url, c.now()); ok {
		c.log.LogAttrs(ctx, slog.LevelDebug, "collateral", slog.String("url", url), slog.String("source", "memory"))
		return h, b, nil
	}
	for {
		c.mu.Lock()
		if cl, ok := c.calls[url]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("collateral: %s: %w", url, ctx.Err())
			}
			if cl.err != nil && isContextErr(cl.err) && ctx.Err() == nil {
				continue // the caller doing the lookup gave up; try again
			}
			return cl.h.Clone(), bytes.Clone(cl.body), cl.err
		}
		cl := &call{done: make(chan struct{})}
		c.calls[url] = cl
		c.mu.Unlock()

		func() {
			defer func() {
				c.mu.Lock()
				delete(c.calls, url)
				c.mu.Unlock()
				close(cl.done)
			}()
			cl.h, cl.body, cl.err = c.lookup(ctx, url)
		}()
		return cl.h.Clone(), bytes.Clone(cl.body), cl.err
	}
}

// call is one lookup in progress, shared by concurrent Gets of a URL.
type call struct {
	done chan struct{}
	h    http.Header
	body []byte
	err  error
}

func (c *Chain) lookup(ctx context.Context, url string) (http.Header, []byte, error) {
	var (
		looked []string
		stale  *memEntry
	)
	found := func(source, dir string, h http.Header, b []byte) (http.Header, []byte, error) {
		c.log.LogAttrs(ctx, slog.LevelInfo, "collateral", slog.String("url", url), slog.String("source", source), slog.String("dir", dir))
		c.mem.put(url, h, b, c.now())
		return h, b, nil
	}
	if c.cache != nil {
		h, b, mod, err := c.cache.read(url)
		switch {
		case err == nil && (c.online == nil || c.maxAge == 0 || c.now().Sub(mod) < c.maxAge):
			return found("cache", c.cache.root, h, b)
		case err == nil:
			stale = &memEntry{h: h, body: b}
			looked = append(looked, fmt.Sprintf("cache %s holds an entry older than %s", c.cache.root, c.maxAge))
		case isAbsent(err):
			looked = append(looked, "not in cache "+c.cache.root)
		default:
			looked = append(looked, fmt.Sprintf("cache %s: %v", c.cache.root, err))
		}
	}
	for _, d := range c.offline {
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("collateral: %s: %w", url, err)
		}
		h, b, _, err := d.read(url)
		switch {
		case err == nil:
			return found("offline", d.root, h, b)
		case isAbsent(err):
			looked = append(looked, "not in offline bundle "+d.root)
		default:
			looked = append(looked, fmt.Sprintf("offline bundle %s: %v", d.root, err))
		}
	}
	if c.online == nil {
		looked = append(looked, "online fetching disabled (--offline)")
	} else {
		h, b, err := c.online.fetch(ctx, url)
		if err == nil {
			if c.cache != nil {
				if err := c.cache.Put(url, h, b); err != nil {
					c.log.LogAttrs(ctx, slog.LevelWarn, "collateral cache write failed", slog.String("url", url), errAttr(err))
				}
			}
			return found("online", "", h, b)
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("collateral: %s: %w", url, err)
		}
		if stale != nil {
			c.log.LogAttrs(ctx, slog.LevelWarn, "collateral refresh failed; serving old cache entry",
				slog.String("url", url), slog.String("dir", c.cache.root), errAttr(err))
			c.mem.put(url, stale.h, stale.body, c.now())
			return stale.h, stale.body, nil
		}
		looked = append(looked, "online fetch failed: "+err.Error())
	}
	if len(looked) == 1 {
		looked = append([]string{"no cache or offline bundle configured"}, looked...)
	}
	err := fmt.Errorf("%w: %s: %s", attestation.ErrCollateralUnavailable, url, strings.Join(looked, ", "))
	c.log.LogAttrs(ctx, slog.LevelWarn, "collateral unavailable", slog.String("url", url), errAttr(err))
	return nil, nil, err
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// memCache is a bounded least-recently-used cache with a TTL. A nil
// *memCache caches nothing.
type memCache struct {
	max int
	ttl time.Duration

	mu sync.Mutex
	ll *list.List // of *memEntry, most recently used first
	m  map[string]*list.Element
}

type memEntry struct {
	url     string
	h       http.Header
	body    []byte
	expires time.Time
}

// get returns copies, so callers cannot change what later callers get.
func (m *memCache) get(url string, now time.Time) (http.Header, []byte, bool) {
	if m == nil {
		return nil, nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.m[url]
	if !ok {
		return nil, nil, false
	}
	e := el.Value.(*memEntry)
	if !now.Before(e.expires) {
		m.ll.Remove(el)
		delete(m.m, url)
		return nil, nil, false
	}
	m.ll.MoveToFront(el)
	return e.h.Clone(), bytes.Clone(e.body), true
}

func (m *memCache) put(url string, h http.Header, body []byte, now time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := &memEntry{url: url, h: h.Clone(), body: bytes.Clone(body), expires: now.Add(m.ttl)}
	if el, ok := m.m[url]; ok {
		el.Value = e
		m.ll.MoveToFront(el)
		return
	}
	m.m[url] = m.ll.PushFront(e)
	for m.ll.Len() > m.max {
		old := m.ll.Back()
		m.ll.Remove(old)
		delete(m.m, old.Value.(*memEntry).url)
	}
}
