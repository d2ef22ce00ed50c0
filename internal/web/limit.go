package web

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrRateLimited means a client sent more requests than its share (429
// "rate-limited", Retry-After).
var ErrRateLimited = fault.New(nil, fault.RateLimited, "rate limited")

// ErrBusy means the server is at its bound on request bodies in memory
// (503 "busy", Retry-After): the client should retry shortly.
var ErrBusy = fault.New(nil, fault.Busy, "too many uploads in progress")

// maxClients bounds the limiter's memory: beyond it every client's history
// is forgotten (a reset only forgives).
const maxClients = 100_000

// Limiter allows each client address a sustained rate of requests, with
// bursts of twice that. It is safe for concurrent use.
type Limiter struct {
	rate rate.Limit
	now  func() time.Time

	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

// NewLimiter returns a limiter of perSecond requests per client; now may
// be nil (time.Now).
func NewLimiter(perSecond float64, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate.Limit(perSecond), now: now, clients: map[string]*rate.Limiter{}}
}

// Allow reports whether client may make a request now.
func (l *Limiter) Allow(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= maxClients {
			clear(l.clients)
		}
		lim = rate.NewLimiter(l.rate, int(2*l.rate)+1)
		l.clients[client] = lim
	}
	return lim.AllowN(l.now(), 1)
}

// Wrap refuses requests beyond the client's rate with ErrRateLimited.
func (l *Limiter) Wrap(h HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if !l.Allow(ClientAddr(r)) {
			return fmt.Errorf("%w: at most %g requests per second from one address", ErrRateLimited, float64(l.rate))
		}
		return h(w, r)
	}
}

// ClientAddr is the address a request came from, without its port.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// BodyBudget bounds the bytes of request bodies held in memory at once
// across a server's upload endpoints, so that many large uploads cannot
// exhaust memory whoever sends them. It is safe for concurrent use.
type BodyBudget struct {
	mu    sync.Mutex
	left  int64
	total int64
}

// NewBodyBudget returns a budget of total bytes.
func NewBodyBudget(total int64) *BodyBudget { return &BodyBudget{left: total, total: total} }

// Limit wraps h, which reads a request body of at most limit bytes: it
// refuses at once, before reading a byte, a body whose declared length is
// over limit (413) or that the budget cannot hold now (ErrBusy: 503), and
// holds the body's share of the budget until h returns. A body must
// declare its length (411 otherwise), so that it is read into one buffer
// of that size.
func (b *BodyBudget) Limit(limit int64, h HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.ContentLength < 0 {
			r.Body.Close()
			return NewProblem(http.StatusLengthRequired, "length-required", "send the body with a Content-Length", nil)
		}
		if r.ContentLength > limit {
			r.Body.Close() // the server then closes the connection instead of draining the body
			return &http.MaxBytesError{Limit: limit}
		}
		n := r.ContentLength
		if !b.reserve(n) {
			r.Body.Close()
			return fmt.Errorf("%w: retry shortly", ErrBusy)
		}
		defer b.release(n)
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		return h(w, r)
	}
}

func (b *BodyBudget) reserve(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

func (b *BodyBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left += n
}
