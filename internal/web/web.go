// Package web holds kura's HTTP plumbing shared by every role: handlers that
// return errors, one adapter that turns them into RFC 9457 problem+json by
// their kind of failure (internal/fault; one table in problems.go: status,
// problem type, a client-safe message, the cause only in logs), request ids,
// panic recovery, body limits, and a server with timeouts and graceful
// shutdown.
package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Problem is an RFC 9457 problem detail. Its fields are safe to show clients.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// RequestID lets an operator find the logged cause.
	RequestID string `json:"request_id,omitempty"`
	// RetryAfter, when set, is sent as the Retry-After header in seconds.
	RetryAfter time.Duration `json:"-"`
	cause      error
}

// ProblemTypeBase prefixes kura's problem type URIs.
const ProblemTypeBase = "https://kura.dev/problems/"

// NewProblem returns a problem whose detail is shown to the client and whose
// cause is only logged.
func NewProblem(status int, kind, detail string, cause error) *Problem {
	return &Problem{Type: ProblemTypeBase + kind, Title: http.StatusText(status), Status: status, Detail: detail, cause: cause}
}

// Error describes the problem with its logged cause, for logs.
func (p *Problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%s: %s: %v", p.Title, p.Detail, p.cause)
	}
	return p.Title + ": " + p.Detail
}

// Unwrap returns the logged cause.
func (p *Problem) Unwrap() error { return p.cause }

// HandlerFunc is an HTTP handler that returns an error instead of writing it.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Mapper turns a domain error into a problem. It is an optional override:
// when it is nil or returns nil, the error is answered by its kind
// (problems.go).
type Mapper func(error) *Problem

type ctxKey struct{}

// RequestID returns the request id the adapter assigned, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// Handle adapts h: it assigns a request id, recovers panics, and writes any
// returned error as problem+json, logging the cause: a *Problem in the
// error's chain as it is, an oversized body as 413, else what mapErr (may be
// nil) returns, else the answer for the error's kind of failure
// (internal/fault) from the one table in problems.go.
func Handle(log *slog.Logger, mapErr Mapper, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Under Instrument the request already has an id, and the failure
		// goes into the one access-log line Instrument writes.
		info := infoOf(r.Context())
		id := RequestID(r.Context())
		if id == "" {
			id = r.Header.Get("X-Request-Id")
			if !validRequestID(id) {
				id = newRequestID()
			}
			w.Header().Set("X-Request-Id", id)
			r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
		}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				if info != nil {
					info.problem, info.err = "internal", fmt.Errorf("panic in handler: %v", v)
				} else {
					log.ErrorContext(r.Context(), "panic in handler", "request_id", id, "path", r.URL.Path, "panic", fmt.Sprint(v))
				}
				WriteProblem(w, &Problem{Type: ProblemTypeBase + "internal", Title: "Internal Server Error", Status: 500, RequestID: id})
			}
		}()
		err := h(w, r)
		if err == nil {
			return
		}
		p := problemFor(err, mapErr)
		p.RequestID = id
		if info != nil {
			info.problem, info.err = strings.TrimPrefix(p.Type, ProblemTypeBase), err
		} else {
			level := slog.LevelInfo
			if p.Status >= 500 {
				level = slog.LevelError
			}
			log.Log(r.Context(), level, "request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", p.Status, "err", err)
		}
		WriteProblem(w, p)
	})
}

// WriteProblem writes p as application/problem+json.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(p.RetryAfter.Seconds()+0.5)))
	}
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// ReadBody reads at most limit bytes of the request body; more is an error
// that Handle reports as 413. A body of declared length is read into one
// buffer of that size (no regrowth: a 64 MiB body costs 64 MiB).
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Serve serves h on l until ctx is done, then shuts down gracefully, giving
// in-flight requests up to drain to finish.
func Serve(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger, drain time.Duration) error {
	return (&Server{Handler: h, Logger: log, Drain: drain}).Serve(ctx, l)
}
