package web

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Event describes one served request, for access logs and metrics. Its
// fields are bounded: Route is the ServeMux pattern that matched, never the
// raw path, so a label built from it cannot grow with what clients send.
type Event struct {
	RequestID string
	// Route is the matched pattern ("POST /v1/attestation/verify"), or
	// "unmatched" when no route matched (404 or 405 from the mux).
	Route  string
	Status int
	// Problem is the kind of the problem+json answer ("policy-denied",
	// "invalid-nonce"...), "" for a success or an answer not written by
	// Handle.
	Problem  string
	Duration time.Duration
	Bytes    int64
}

// UnmatchedRoute is Event.Route for requests no pattern matched.
const UnmatchedRoute = "unmatched"

// requestInfo is what Handle tells Instrument about a request.
type requestInfo struct {
	problem string
	err     error
}

type infoKey struct{}

func infoOf(ctx context.Context) *requestInfo {
	i, _ := ctx.Value(infoKey{}).(*requestInfo)
	return i
}

// Instrument wraps a ServeMux (or any handler that sets r.Pattern): it
// assigns each request an id (a well-formed X-Request-Id from the client is
// kept), writes one access-log line per request with the id, route, status
// and duration, and calls observe, when not nil, with the request's Event.
// Failures (status >= 400) are logged at info, with their cause, 5xx at
// error; successes at debug, so --log-level debug gives a full access log.
// Handlers built with Handle report their error's cause into that line
// instead of logging it separately.
func Instrument(log *slog.Logger, next http.Handler, observe func(Event)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		info := &requestInfo{}
		ctx := context.WithValue(context.WithValue(r.Context(), ctxKey{}, id), infoKey{}, info)
		r = r.WithContext(ctx)
		rw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				info.problem, info.err = "internal", fmt.Errorf("panic: %v", v)
				if rw.status == 0 {
					WriteProblem(rw, &Problem{Type: ProblemTypeBase + "internal", Title: "Internal Server Error", Status: 500, RequestID: id})
				}
			}
			if rw.status == 0 {
				rw.status = http.StatusOK
			}
			ev := Event{RequestID: id, Route: r.Pattern, Status: rw.status, Problem: info.problem, Duration: time.Since(start), Bytes: rw.bytes}
			if ev.Route == "" {
				ev.Route = UnmatchedRoute
			}
			level := slog.LevelDebug
			switch {
			case ev.Status >= 500:
				level = slog.LevelError
			case ev.Status >= 400:
				level = slog.LevelInfo
			}
			if log.Enabled(ctx, level) {
				attrs := []slog.Attr{
					slog.String("request_id", id), slog.String("method", r.Method), slog.String("route", ev.Route),
					slog.Int("status", ev.Status), slog.Float64("duration_ms", float64(ev.Duration.Microseconds())/1000),
					slog.Int64("bytes", ev.Bytes),
				}
				if ev.Problem != "" {
					attrs = append(attrs, slog.String("problem", ev.Problem))
				}
				if info.err != nil {
					attrs = append(attrs, slog.String("err", info.err.Error()))
				}
				log.LogAttrs(ctx, level, "request", attrs...)
			}
			if observe != nil {
				observe(ev)
			}
		}()
		next.ServeHTTP(rw, r)
	})
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers flush through the wrapper.
func (w *statusWriter) Flush() {
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ContextHandler wraps a slog handler so that every record logged with a
// request's context (log.InfoContext(r.Context(), ...)) carries its
// request_id, tying a handler's own lines to the access-log line.
func ContextHandler(h slog.Handler) slog.Handler { return ctxHandler{h} }

type ctxHandler struct{ slog.Handler }

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" && !hasAttr(r, "request_id") {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h ctxHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(as)}
}

func (h ctxHandler) WithGroup(name string) slog.Handler { return ctxHandler{h.Handler.WithGroup(name)} }

func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
