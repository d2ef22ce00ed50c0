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
	"time"
)

var errDomain = errors.New("domain failure")

func handler(logs io.Writer, h HandlerFunc) http.Handler {
	mapper := func(err error) *Problem {
		if errors.Is(err, errDomain) {
			return NewProblem(http.StatusConflict, "domain", "safe detail", err)
		}
		return nil
	}
	return Handle(slog.New(slog.NewTextHandler(logs, nil)), mapper, h)
}

func TestHandleErrors(t *testing.T) {
	var logs bytes.Buffer
	tests := []struct {
		name   string
		h      HandlerFunc
		status int
		leak   string // must not reach the client
	}{
		{"mapped", func(http.ResponseWriter, *http.Request) error { return errDomain }, http.StatusConflict, ""},
		{"internal", func(http.ResponseWriter, *http.Request) error { return errors.New("db password=hunter2") }, 500, "hunter2"},
		{"panic", func(http.ResponseWriter, *http.Request) error { panic("boom secret") }, 500, "boom"},
		{"too large", func(w http.ResponseWriter, r *http.Request) error {
			_, err := ReadBody(w, r, 4)
			return err
		}, http.StatusRequestEntityTooLarge, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader("more than four bytes"))
		req.Header.Set("X-Request-Id", "bad id with spaces")
		handler(&logs, tt.h).ServeHTTP(rec, req)
		var p Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s: body %q: %v", tt.name, rec.Body, err)
		}
		if rec.Code != tt.status || p.Status != tt.status || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %+v", tt.name, rec.Code, p)
		}
		if id := rec.Header().Get("X-Request-Id"); id == "" || id == "bad id with spaces" || id != p.RequestID {
			t.Errorf("%s: request id %q / %q", tt.name, id, p.RequestID)
		}
		if tt.leak != "" && strings.Contains(rec.Body.String(), tt.leak) {
			t.Errorf("%s: internal cause reached the client: %s", tt.name, rec.Body)
		}
	}
	if !strings.Contains(logs.String(), "hunter2") || !strings.Contains(logs.String(), "panic in handler") {
		t.Errorf("causes not logged: %s", logs.String())
	}
}

// TestServeDrains: shutdown waits for an in-flight request to finish.
func TestServeDrains(t *testing.T) {
	started := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "done")
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, l, mux, slog.New(slog.DiscardHandler), 5*time.Second) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	cancel()
	if body := <-got; body != "done" {
		t.Errorf("in-flight request: %q, want done", body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
