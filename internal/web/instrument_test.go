package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestInstrument: one access-log line per request carrying the request id,
// the route pattern (not the raw path), status and duration; the cause of a
// failure goes into that line only; Events carry the problem kind.
func TestInstrument(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(ContextHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	mux := http.NewServeMux()
	mux.Handle("GET /item/{id}", Handle(log, nil, func(w http.ResponseWriter, r *http.Request) error {
		log.InfoContext(r.Context(), "handler line")
		return WriteJSON(w, http.StatusOK, "ok")
	}))
	mux.Handle("POST /fail", Handle(log, func(error) *Problem { return NewProblem(http.StatusForbidden, "denied", "no", nil) },
		func(http.ResponseWriter, *http.Request) error { return errors.New("cause detail") }))
	var events []Event
	h := Instrument(log, mux, func(ev Event) { events = append(events, ev) })

	for _, c := range []struct{ method, path string }{{"GET", "/item/secret-id-123"}, {"POST", "/fail"}, {"GET", "/nowhere"}} {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.Header.Set("X-Request-Id", "client-id-1")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	want := []Event{
		{Route: "GET /item/{id}", Status: 200},
		{Route: "POST /fail", Status: 403, Problem: "denied"},
		{Route: UnmatchedRoute, Status: 404},
	}
	if len(events) != len(want) {
		t.Fatalf("%d events, want %d", len(events), len(want))
	}
	for i, w := range want {
		ev := events[i]
		if ev.Route != w.Route || ev.Status != w.Status || ev.Problem != w.Problem || ev.RequestID != "client-id-1" {
			t.Errorf("event %d = %+v, want %+v", i, ev, w)
		}
	}
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	access := 0
	for _, m := range lines {
		if m["request_id"] != "client-id-1" {
			t.Errorf("log line without the request id: %v", m)
		}
		if m["msg"] == "request" {
			access++
			for _, k := range []string{"route", "status", "duration_ms", "method"} {
				if _, ok := m[k]; !ok {
					t.Errorf("access line lacks %s: %v", k, m)
				}
			}
		}
		if m["msg"] == "request failed" {
			t.Errorf("failure logged twice: %v", m)
		}
	}
	if access != 3 || strings.Contains(logs.String(), "secret-id-123") {
		t.Errorf("%d access lines (want 3), or a raw path leaked into logs:\n%s", access, logs.String())
	}
	if !strings.Contains(logs.String(), "cause detail") {
		t.Errorf("cause not logged: %s", logs.String())
	}
}

// TestShutdownNotReadyFirst: when shutdown begins /readyz answers 503 with
// the reason while an in-flight request is still being served, and that
// request then completes.
func TestShutdownNotReadyFirst(t *testing.T) {
	ready := &Readiness{}
	ready.AddCheck("store", func(context.Context) error { return nil })
	shutdown := make(chan struct{})
	inHandler := make(chan struct{})
	var readyDuringDrain *httptest.ResponseRecorder
	mux := http.NewServeMux()
	mux.Handle("GET /readyz", ready.Handler())
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(inHandler)
		<-shutdown
		readyDuringDrain = httptest.NewRecorder()
		ready.Handler().ServeHTTP(readyDuringDrain, httptest.NewRequest("GET", "/readyz", nil))
		io.WriteString(w, "done")
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	srv := &Server{Handler: mux, OnShutdown: func() { ready.SetDraining("shutting down"); close(shutdown) }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, l) }()
	resp, err := http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		cancel()
		t.Fatalf("readyz before shutdown: %v %v", resp, err)
	}
	resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-inHandler
	cancel()
	if body := <-got; body != "done" {
		t.Errorf("in-flight request: %q, want done", body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	var rr ReadyResponse
	json.Unmarshal(readyDuringDrain.Body.Bytes(), &rr)
	if readyDuringDrain.Code != http.StatusServiceUnavailable || len(rr.Reasons) != 1 || !strings.HasPrefix(rr.Reasons[0], "draining") {
		t.Errorf("readyz during drain: %d %s", readyDuringDrain.Code, readyDuringDrain.Body)
	}
}

func TestReadinessReasons(t *testing.T) {
	r := &Readiness{}
	r.AddCheck("store", func(context.Context) error { return errors.New("connection refused") })
	r.AddCheck("keys", func(context.Context) error { return nil })
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var rr ReadyResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &rr); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 503 || rr.Status != "not ready" || len(rr.Reasons) != 1 || rr.Reasons[0] != "store: connection refused" {
		t.Errorf("got %d %+v", rec.Code, rr)
	}
}
