package keybroker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kura-cc/kura/attestation"
)

// SessionCookie is the KBS protocol's session cookie name.
const SessionCookie = "kbs-session-id"

// errTooManySessions means the session table is full.
var errTooManySessions = errors.New("too many KBS sessions; retry shortly")

// session is one KBS attestation session.
type session struct {
	tee      attestation.TEE
	nonce    []byte
	expires  time.Time
	attested *Attested // nil until /attest succeeds
	token    string
}

// sessions is a bounded table of KBS sessions with expiry.
type sessions struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(ttl time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, max: max, now: now, m: map[string]*session{}}
}

// create starts a session and returns its id.
func (s *sessions) create(tee attestation.TEE, nonce []byte) (string, *session, error) {
	var idb [32]byte
	rand.Read(idb[:])
	id := base64.RawURLEncoding.EncodeToString(idb[:])
	now := s.now()
	sess := &session{tee: tee, nonce: nonce, expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		for k, v := range s.m {
			if now.After(v.expires) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= s.max {
			return "", nil, errTooManySessions
		}
	}
	s.m[id] = sess
	return id, sess, nil
}

// get returns a live session.
func (s *sessions) get(id string) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if s.now().After(sess.expires) {
		delete(s.m, id)
		return nil, false
	}
	return sess, true
}

// attest marks a session attested. A session attests once: its nonce is
// then spent.
func (s *sessions) attest(id string, a *Attested, tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok || sess.attested != nil {
		return false
	}
	sess.attested, sess.token, sess.nonce = a, tok, nil
	return true
}

// limiter rate-limits requests per client address.
type limiter struct {
	rate rate.Limit
	now  func() time.Time

	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newLimiter(perSecond float64, now func() time.Time) *limiter {
	return &limiter{rate: rate.Limit(perSecond), now: now, clients: map[string]*rate.Limiter{}}
}

// allow reports whether client may make a request now.
func (l *limiter) allow(client string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.clients[client]
	if !ok {
		if len(l.clients) >= 100000 {
			clear(l.clients) // bounded memory; a reset only forgives
		}
		lim = rate.NewLimiter(l.rate, int(2*l.rate)+1)
		l.clients[client] = lim
	}
	return lim.AllowN(l.now(), 1)
}
