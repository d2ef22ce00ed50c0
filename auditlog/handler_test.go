package auditlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
)

// servedLog opens a log with n entries, its events logged to the returned
// buffer, and serves its read API through wrap.
func servedLog(t *testing.T, n int, wrap func(http.Handler) http.Handler) (*httptest.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	l, err := auditlog.Open(context.Background(), auditlog.Config{Dir: t.TempDir(), Key: newKey(t, "kura.test/log"),
		CheckpointInterval: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	appendN(t, l, n)
	settle(t, l, n)
	srv := httptest.NewServer(wrap(l.Handler()))
	t.Cleanup(srv.Close)
	return srv, logs
}

func getStatus(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p struct{ Type string }
	json.Unmarshal(body, &p)
	return resp.StatusCode, p.Type
}

// TestHandlerTileNames: tiles and bundles in the tlog-tiles layout are
// served; any other name under tile/ — a NUL byte, a bad segment — is 404,
// not a server error.
func TestHandlerTileNames(t *testing.T) {
	srv, logs := servedLog(t, 3, func(h http.Handler) http.Handler { return h })
	for path, want := range map[string]int{
		"/tile/0/000.p/3":          200,
		"/tile/entries/000.p/3":    200,
		"/checkpoint":              200,
		"/tile/0/000":              404, // not full yet
		"/tile/0/000%00":           404,
		"/tile/0/%00":              404,
		"/tile/entries/000.p/3%00": 404,
		"/tile/%00/000":            404,
		"/tile/0/x000%00/000":      404,
		"/tile/0/0000":             404,
		"/tile/0/00":               404,
		"/tile/0/abc":              404,
		"/tile/0/000.p/":           404,
		"/tile/0/000.p/1234":       404,
		"/tile/0/000.p/3/x":        404,
		"/tile/100/000":            404,
		"/tile/0/y001/000":         404,
		"/tile/0":                  404,
		"/tile/":                   404,
		"/tile/0/.state":           404,
	} {
		if got, typ := getStatus(t, srv, path); got != want {
			t.Errorf("GET %s: %d %s, want %d", path, got, typ, want)
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("bad tile names logged as server errors:\n%s", logs)
	}
}

// TestHandlerClientGone: a read whose client went away is answered 499
// (client closed) and not logged as a server error, whether the client left
// before the answer was ready or while it was sent.
func TestHandlerClientGone(t *testing.T) {
	// The request's context is done, as when its client disconnects.
	gone := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithCancel(r.Context())
			cancel()
			h.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	srv, logs := servedLog(t, 3, gone)
	for _, path := range []string{"/checkpoint", "/tile/0/000.p/3", "/tile/entries/000.p/3", "/proof/1"} {
		if got, typ := getStatus(t, srv, path); got != 499 || typ != "https://kura.dev/problems/client-closed" {
			t.Errorf("GET %s with the client gone: %d %s, want 499 client-closed", path, got, typ)
		}
	}
	// Sending the answer fails, as on a connection the client reset.
	broken := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(failingWriter{w}, r)
		})
	}
	srv2, logs2 := servedLog(t, 3, broken)
	for _, path := range []string{"/checkpoint", "/tile/0/000.p/3", "/proof/1"} {
		if got, _ := getStatus(t, srv2, path); got != 200 {
			t.Errorf("GET %s with the connection broken while sending: status %d, want 200 (sent before the body)", path, got)
		}
	}
	for _, l := range []*syncBuffer{logs, logs2} {
		if strings.Contains(l.String(), "level=ERROR") {
			t.Errorf("a client that went away logged as a server error:\n%s", l)
		}
	}
	if !strings.Contains(logs2.String(), "log read not delivered") {
		t.Errorf("undelivered answers not logged (at debug):\n%s", logs2)
	}
}

// failingWriter sends the status, then fails every write of the body.
type failingWriter struct{ http.ResponseWriter }

func (w failingWriter) Write([]byte) (int, error) {
	w.ResponseWriter.WriteHeader(http.StatusOK)
	return 0, syscall.ECONNRESET
}

// syncBuffer is a bytes.Buffer safe for the log's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
