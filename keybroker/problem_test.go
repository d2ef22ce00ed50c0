package keybroker

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// TestProblemTypes: the broker's errors, as its handlers return them, keep
// the KBS statuses and problem types of docs/spec/keybroker.md §2 now that
// the kind table answers them.
func TestProblemTypes(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		typ    string
		retry  string
	}{
		{fmt.Errorf("%w: attestation failed: %w", ErrUnauthenticated, attestation.ErrBadSignature), 401, "unauthenticated", ""},
		{errNoSession, 401, "unauthenticated", ""},
		{fmt.Errorf("%w: signature", ErrAdminAuth), 401, "admin-unauthenticated", ""},
		{fmt.Errorf("%w: deny", ErrDenied), 403, "policy-denied", ""},
		{fmt.Errorf("%w: key carrier does not own repository airline", ErrNotYourTenant), 403, "not-your-tenant", ""},
		{fmt.Errorf("%w: a/b/c", ErrNotFound), 404, "resource-not-found", ""},
		{fmt.Errorf("%w: tee-evidence: %w", ErrBadRequest, attestation.ErrMalformed), 400, "bad-request", ""},
		{ErrRateLimited, 429, "rate-limited", "1"},
		{fmt.Errorf("%w: %w", errTooManySessions, store.ErrFull), 503, "busy", "5"},
		{fmt.Errorf("policy p bound to a/b/c: %w", ErrBadPolicy), 500, "internal", ""},
	} {
		rec := httptest.NewRecorder()
		web.Handle(slog.New(slog.DiscardHandler), nil, func(http.ResponseWriter, *http.Request) error { return c.err }).
			ServeHTTP(rec, httptest.NewRequest("GET", "/kbs/v0/resource/a/b/c", nil))
		var p web.Problem
		json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != c.status || p.Type != web.ProblemTypeBase+c.typ || rec.Header().Get("Retry-After") != c.retry {
			t.Errorf("%v: %d %s (Retry-After %q), want %d %s", c.err, rec.Code, p.Type, rec.Header().Get("Retry-After"), c.status, c.typ)
		}
		if c.status == 503 && p.Detail != "too many KBS sessions; retry shortly" {
			t.Errorf("busy detail %q", p.Detail)
		}
	}
}
