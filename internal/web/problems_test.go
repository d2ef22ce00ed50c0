package web

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/internal/fault"
)

// TestProblemTable pins the answer for every kind: status, default problem
// type, whether the error's text reaches the client, and Retry-After.
func TestProblemTable(t *testing.T) {
	want := map[fault.Kind]struct {
		status int
		code   string
		retry  time.Duration
	}{
		fault.Internal:        {500, "internal", 0},
		fault.Malformed:       {400, "bad-request", 0},
		fault.Invalid:         {400, "bad-request", 0},
		fault.BadRequest:      {400, "bad-request", 0},
		fault.Unsupported:     {400, "bad-request", 0},
		fault.BadSignature:    {422, "bad-signature", 0},
		fault.Untrusted:       {422, "untrusted", 0},
		fault.Tampered:        {422, "tampered", 0},
		fault.WrongKey:        {500, "internal", 0},
		fault.Expired:         {422, "expired", 0},
		fault.Stale:           {400, "stale", 0},
		fault.Denied:          {403, "policy-denied", 0},
		fault.Unauthenticated: {401, "unauthenticated", 0},
		fault.NotFound:        {404, "not-found", 0},
		fault.Conflict:        {409, "conflict", 0},
		fault.Unavailable:     {503, "unavailable", 10 * time.Second},
		fault.Busy:            {503, "busy", 5 * time.Second},
		fault.RateLimited:     {429, "rate-limited", time.Second},
		fault.TooEarly:        {403, "too-early", 0},
	}
	if len(problems) != len(fault.Kinds()) || len(want) != len(fault.Kinds()) {
		t.Fatalf("%d rows, %d expectations, %d kinds", len(problems), len(want), len(fault.Kinds()))
	}
	secret := "at https://internal.example/x in /srv/kura/state"
	for _, k := range fault.Kinds() {
		err := fmt.Errorf("handler: %w", fmt.Errorf("%w: %s", fault.New(nil, k, "thing "+k.String()), secret))
		p := problemFor(err, nil)
		w := want[k]
		if p.Status != w.status || p.Type != ProblemTypeBase+w.code || p.RetryAfter != w.retry || p.Title != http.StatusText(w.status) {
			t.Errorf("%v: %d %s retry %v, want %d %s retry %v", k, p.Status, p.Type, p.RetryAfter, w.status, w.code, w.retry)
		}
		clientOwn := w.status < 500 && w.status != http.StatusTooManyRequests
		if got := strings.Contains(p.Detail, secret); got != clientOwn {
			t.Errorf("%v: detail %q: sends the error's text = %v, want %v", k, p.Detail, got, clientOwn)
		}
		if p.Unwrap() != err {
			t.Errorf("%v: cause not kept for the log", k)
		}
	}
}

// TestProblemCodes: a sentinel's own code replaces its kind's, wrapped or
// not; the outermost classified error decides; a 500 never takes a code;
// unclassified errors are 500 with a fixed detail.
func TestProblemCodes(t *testing.T) {
	root := errors.New("thing failed")
	nonce := fault.NewCode(root, fault.Stale, "invalid-nonce", "invalid nonce")
	unauth := fault.New(root, fault.Unauthenticated, "not authenticated")
	hidden := fault.NewCode(root, fault.Internal, "secret-code", "boom")
	cases := []struct {
		err    error
		status int
		code   string
		detail string
	}{
		{nonce, 400, "invalid-nonce", "invalid nonce"},
		{fmt.Errorf("verify: %w", fmt.Errorf("%w: reused", nonce)), 400, "invalid-nonce", "verify: invalid nonce: reused"},
		{fmt.Errorf("%w: attestation failed: %w", unauth, nonce), 401, "unauthenticated", "not authenticated: attestation failed: invalid nonce"},
		{hidden, 500, "internal", internalDetail},
		{errors.New("dial tcp 10.0.0.7:5432: connection refused"), 500, "internal", internalDetail},
		{fmt.Errorf("%w: %w", fault.Busy, errors.New("store: table full at /srv")), 503, "busy", "busy; retry shortly"},
	}
	for _, c := range cases {
		p := problemFor(c.err, nil)
		if p.Status != c.status || p.Type != ProblemTypeBase+c.code || p.Detail != c.detail {
			t.Errorf("%q: %d %s %q, want %d %s %q", c.err, p.Status, p.Type, p.Detail, c.status, c.code, c.detail)
		}
	}
}

// TestMapperOverride: a Mapper still wins, and one that returns nil falls
// through to the kind table; Handle writes Retry-After.
func TestMapperOverride(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	conflict := fault.NewCode(nil, fault.Conflict, "concurrent-update", "concurrent write")
	local := errors.New("refused here")
	mapper := func(err error) *Problem {
		if errors.Is(err, local) {
			return NewProblem(http.StatusConflict, "collaboration-refused", err.Error(), err)
		}
		return nil
	}
	for _, c := range []struct {
		err        error
		status     int
		typ, retry string
	}{
		{local, 409, "collaboration-refused", ""},
		{conflict, 409, "concurrent-update", ""},
		{fmt.Errorf("fetch: %w", fault.Unavailable), 503, "unavailable", "10"},
	} {
		rec := httptest.NewRecorder()
		Handle(log, mapper, func(http.ResponseWriter, *http.Request) error { return c.err }).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != c.status || !strings.Contains(string(body), `"type":"`+ProblemTypeBase+c.typ+`"`) || rec.Header().Get("Retry-After") != c.retry {
			t.Errorf("%v: %d %s (Retry-After %q)", c.err, rec.Code, body, rec.Header().Get("Retry-After"))
		}
	}
}

// TestRemoteErrorKinds: a client reading a problem answer gets back the
// kind the server answered with, except where kinds share one answer
// (every 400 "bad-request" reads as BadRequest, every 500 as Internal).
func TestRemoteErrorKinds(t *testing.T) {
	for _, k := range fault.Kinds() {
		rec := httptest.NewRecorder()
		WriteProblem(rec, problemFor(fmt.Errorf("some %w", k), nil))
		re := ReadProblem("test", rec.Code, rec.Body.Bytes())
		want := k
		switch rec.Code {
		case http.StatusBadRequest:
			if !strings.HasSuffix(re.Type, "/stale") {
				want = fault.BadRequest
			}
		case http.StatusInternalServerError:
			want = fault.Internal
		}
		if !errors.Is(re, want) {
			t.Errorf("%v answered %d %s reads as %v, want %v", k, rec.Code, re.Type, re.Unwrap(), want)
		}
	}
	if re := ReadProblem("test", http.StatusBadGateway, []byte("upstream down")); !errors.Is(re, fault.Internal) || !strings.Contains(re.Error(), "upstream down") {
		t.Errorf("a plain-text 502: %v", re)
	}
}
