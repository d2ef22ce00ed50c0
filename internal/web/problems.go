package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/fault"
)

// kindProblem is how the HTTP API answers one kind of failure.
type kindProblem struct {
	status int
	// code is the problem type slug when the error's sentinel has no code
	// of its own (fault.NewCode).
	code string
	// detail is what the client is told. "" sends the error's text: the
	// kinds that leave it empty are the caller's own failures, whose errors
	// describe the caller's input. Otherwise the cause stays in the log and
	// detail is sent, with %s replaced by the sentinel's own text (a
	// constant, never the wrapped cause, which may name URLs or paths).
	detail     string
	retryAfter time.Duration
}

const internalDetail = "internal error; quote the request id to the operator"

// problems is the one table from kinds of failure to HTTP answers. The
// statuses and codes are part of the wire format (docs/spec/attestation.md
// §8, docs/spec/keybroker.md §2).
var problems = [...]kindProblem{
	fault.Internal:        {http.StatusInternalServerError, "internal", internalDetail, 0},
	fault.Malformed:       {http.StatusBadRequest, "bad-request", "", 0},
	fault.Invalid:         {http.StatusBadRequest, "bad-request", "", 0},
	fault.BadRequest:      {http.StatusBadRequest, "bad-request", "", 0},
	fault.Unsupported:     {http.StatusBadRequest, "bad-request", "", 0},
	fault.BadSignature:    {http.StatusUnprocessableEntity, "bad-signature", "", 0},
	fault.Untrusted:       {http.StatusUnprocessableEntity, "untrusted", "", 0},
	fault.Tampered:        {http.StatusUnprocessableEntity, "tampered", "", 0},
	fault.WrongKey:        {http.StatusInternalServerError, "internal", internalDetail, 0}, // a server's keys are its operator's
	fault.Expired:         {http.StatusUnprocessableEntity, "expired", "", 0},
	fault.Stale:           {http.StatusBadRequest, "stale", "", 0},
	fault.Denied:          {http.StatusForbidden, "policy-denied", "", 0},
	fault.Unauthenticated: {http.StatusUnauthorized, "unauthenticated", "", 0},
	fault.NotFound:        {http.StatusNotFound, "not-found", "", 0},
	fault.Conflict:        {http.StatusConflict, "conflict", "", 0},
	fault.Unavailable:     {http.StatusServiceUnavailable, "unavailable", "%s; retry later", 10 * time.Second},
	fault.Busy:            {http.StatusServiceUnavailable, "busy", "%s; retry shortly", 5 * time.Second},
	fault.RateLimited:     {http.StatusTooManyRequests, "rate-limited", "too many requests from this client", time.Second},
	fault.TooEarly:        {http.StatusForbidden, "too-early", "", 0},
}

// problemFor answers err: a *Problem in its chain as it is, an oversized
// body as 413, else what mapErr (may be nil) returns, else the row of
// problems for err's kind, with the sentinel's own code when it has one.
func problemFor(err error, mapErr Mapper) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		c := *p
		return &c
	}
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return NewProblem(http.StatusRequestEntityTooLarge, "too-large", fmt.Sprintf("request body is larger than %d bytes", maxErr.Limit), err)
	}
	if mapErr != nil {
		if p := mapErr(err); p != nil {
			return p
		}
	}
	k := fault.KindOf(err)
	if int(k) >= len(problems) {
		k = fault.Internal
	}
	row := problems[k]
	code := fault.CodeOf(err)
	if code == "" || row.status == http.StatusInternalServerError {
		code = row.code
	}
	detail := err.Error()
	if row.detail != "" {
		detail = row.detail
		if strings.Contains(detail, "%s") {
			detail = fmt.Sprintf(detail, fault.Sentinel(err))
		}
	}
	p = NewProblem(row.status, code, detail, err)
	p.RetryAfter = row.retryAfter
	return p
}

// RemoteError is a kura server's problem answer, read by a client: it
// wraps the kind the problems table answers with that type (or, for a
// type it does not know, with that status), so errors.Is and the CLI's
// exit codes treat it as the same failure on both sides of the wire.
type RemoteError struct {
	Service string // who answered, e.g. "coordinator"
	Status  int
	Type    string
	Detail  string
}

// ReadProblem turns a non-2xx answer's body into a *RemoteError.
func ReadProblem(service string, status int, body []byte) *RemoteError {
	var p Problem
	json.Unmarshal(body, &p)
	if p.Detail == "" {
		p.Detail = strings.TrimSpace(string(body))
	}
	return &RemoteError{Service: service, Status: status, Type: p.Type, Detail: p.Detail}
}

// Error names who answered, the status, the problem code and the detail.
func (e *RemoteError) Error() string {
	code := ""
	if c := strings.TrimPrefix(e.Type, ProblemTypeBase); c != "" && c != e.Type {
		code = " (" + c + ")"
	}
	return fmt.Sprintf("%s: %d %s%s: %s", e.Service, e.Status, http.StatusText(e.Status), code, e.Detail)
}

// Unwrap returns the fault kind of the answer: the kind whose own problem
// type it carries, else the usual kind of its status.
func (e *RemoteError) Unwrap() error {
	code := strings.TrimPrefix(e.Type, ProblemTypeBase)
	if code != "bad-request" && code != "internal" {
		for k, row := range problems {
			if row.status == e.Status && row.code == code {
				return fault.Kind(k)
			}
		}
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return fault.BadRequest
	case http.StatusUnauthorized:
		return fault.Unauthenticated
	case http.StatusForbidden:
		return fault.Denied
	case http.StatusNotFound:
		return fault.NotFound
	case http.StatusConflict:
		return fault.Conflict
	case http.StatusUnprocessableEntity:
		return fault.Invalid
	case http.StatusTooManyRequests:
		return fault.RateLimited
	case http.StatusServiceUnavailable:
		return fault.Unavailable
	}
	return fault.Internal
}
