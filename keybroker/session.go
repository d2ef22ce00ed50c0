package keybroker

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/store"
)

// SessionCookie is the KBS protocol's session cookie name.
const SessionCookie = "kbs-session-id"

// errTooManySessions means the session table is full (503 "busy").
var errTooManySessions = fault.New(ErrKeyBroker, fault.Busy, "too many KBS sessions")

// session is one KBS attestation session between /auth and /attest.
type session struct {
	TEE     attestation.TEE `json:"tee"`
	Nonce   []byte          `json:"nonce"`
	Expires time.Time       `json:"expires"`
}

// sessions keeps KBS sessions in an ephemeral store, in memory or shared by
// every replica through the database. A session is two records, keyed by
// the SHA-256 of its id (the cookie is a credential; the store never holds
// it):
//
//	kbs-session/<hash>   the session, from /auth until /attest takes it
//	kbs-attested/<hash>  its attestation token, from /attest until expiry
//
// A replica that serves a resource request checks the token itself (any
// replica trusts the same verifiers) and caches it for the session, so only
// a session's first request on a replica reads the store.
type sessions struct {
	ttl time.Duration
	max int // bounds the cache
	now func() time.Time
	eph store.Ephemeral

	mu    sync.Mutex
	cache map[[sha256.Size]byte]attestedSession
}

type attestedSession struct {
	Token   []byte    `json:"token"`
	Expires time.Time `json:"expires"`
}

func newSessions(ttl time.Duration, max int, now func() time.Time, eph store.Ephemeral) *sessions {
	return &sessions{ttl: ttl, max: max, now: now, eph: eph, cache: map[[sha256.Size]byte]attestedSession{}}
}

func sessionHash(id string) [sha256.Size]byte { return sha256.Sum256([]byte(id)) }

func sessionKey(kind string, h [sha256.Size]byte) string {
	return kind + "/" + hex.EncodeToString(h[:])
}

// create starts a session and returns its id.
func (s *sessions) create(ctx context.Context, tee attestation.TEE, nonce []byte) (string, *session, error) {
	var idb [32]byte
	rand.Read(idb[:])
	id := base64.RawURLEncoding.EncodeToString(idb[:])
	sess := &session{TEE: tee, Nonce: nonce, Expires: s.now().Add(s.ttl).UTC()}
	val, err := json.Marshal(sess)
	if err != nil {
		return "", nil, err
	}
	ok, err := s.eph.Add(ctx, sessionKey("kbs-session", sessionHash(id)), val, sess.Expires)
	switch {
	case errors.Is(err, store.ErrFull):
		return "", nil, fmt.Errorf("%w: %w", errTooManySessions, err)
	case err != nil:
		return "", nil, fmt.Errorf("keybroker: store session: %w", err)
	case !ok:
		return "", nil, errors.New("keybroker: store session: a fresh random session id is taken")
	}
	return id, sess, nil
}

// pending returns a live session that has not attested.
func (s *sessions) pending(ctx context.Context, id string) (*session, bool, error) {
	val, ok, err := s.eph.Get(ctx, sessionKey("kbs-session", sessionHash(id)))
	if err != nil || !ok {
		return nil, false, err
	}
	return decodeSession(val)
}

// take claims a pending session for one attestation attempt: its nonce is
// spent whatever the outcome, and of concurrent attempts one gets it.
func (s *sessions) take(ctx context.Context, id string) (*session, bool, error) {
	val, ok, err := s.eph.Take(ctx, sessionKey("kbs-session", sessionHash(id)))
	if err != nil || !ok {
		return nil, false, err
	}
	return decodeSession(val)
}

func decodeSession(val []byte) (*session, bool, error) {
	var sess session
	if err := json.Unmarshal(val, &sess); err != nil {
		return nil, false, fmt.Errorf("keybroker: stored session: %w", err)
	}
	return &sess, true, nil
}

// attest records the token a session attested with, until the session
// expires.
func (s *sessions) attest(ctx context.Context, id string, sess *session, tok []byte) error {
	h := sessionHash(id)
	a := attestedSession{Token: tok, Expires: sess.Expires}
	val, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ok, err := s.eph.Add(ctx, sessionKey("kbs-attested", h), val, sess.Expires)
	if err != nil {
		return fmt.Errorf("keybroker: store attested session: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: session already attested", ErrUnauthenticated)
	}
	s.remember(h, a)
	return nil
}

// token returns the token of an attested, live session.
func (s *sessions) token(ctx context.Context, id string) ([]byte, bool, error) {
	a, ok, err := s.attested(ctx, id)
	if err != nil || !ok {
		return nil, false, err
	}
	return a.Token, true, nil
}

// attested returns an attested, live session: its token and expiry.
func (s *sessions) attested(ctx context.Context, id string) (*attestedSession, bool, error) {
	h := sessionHash(id)
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[h]
	s.mu.Unlock()
	if ok {
		if now.Before(c.Expires) {
			return &c, true, nil
		}
		return nil, false, nil
	}
	val, ok, err := s.eph.Get(ctx, sessionKey("kbs-attested", h))
	if err != nil || !ok {
		return nil, false, err
	}
	var a attestedSession
	if err := json.Unmarshal(val, &a); err != nil {
		return nil, false, fmt.Errorf("keybroker: stored attested session: %w", err)
	}
	s.remember(h, a)
	return &a, true, nil
}

func (s *sessions) remember(h [sha256.Size]byte, a attestedSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= s.max {
		now := s.now()
		for k, v := range s.cache {
			if !now.Before(v.Expires) {
				delete(s.cache, k)
			}
		}
		if len(s.cache) >= s.max {
			clear(s.cache) // bounded memory; a reset only costs store reads
		}
	}
	s.cache[h] = a
}
