package inference

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The secrets a test sends and receives; none may appear on the wire or
// in the gateway's logs.
const (
	secretPrompt = "PROMPT-purple-elephant-launch-code-4242"
	secretAnswer = "ANSWER-zebra-quartz-7777"
	embedInput   = "EMBED-confidential-salary-table-3131"
)

func sseTokens() []string {
	return []string{"TOKEN-alpha-11", "TOKEN-bravo-22", "TOKEN-charlie-33", "TOKEN-delta-44", "TOKEN-echo-55"}
}

// upstream is a fake OpenAI-compatible model server.
type upstream struct {
	srv      *httptest.Server
	tokens   []string
	delay    time.Duration // between streamed events
	hold     chan struct{} // when set, the last event waits for it
	requests atomic.Int64

	mu      sync.Mutex
	headers []http.Header // of every request
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Stream bool `json:"stream"`
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{tokens: sseTokens(), delay: 2 * time.Millisecond}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		var req chatRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 || req.Messages[0].Content != secretPrompt {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error":{"message":"not the prompt the test sent"}}`)
			return
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model,
				"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
					"message": map[string]string{"role": "assistant", "content": secretAnswer}}},
			})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Upstream-Secret", "must-not-travel")
		fl := http.NewResponseController(w)
		for i, tok := range u.tokens {
			if i == len(u.tokens)-1 && u.hold != nil {
				select {
				case <-u.hold:
				case <-r.Context().Done():
					return
				}
			}
			chunk, _ := json.Marshal(map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk",
				"choices": []any{map[string]any{"index": 0, "delta": map[string]string{"content": tok}}}})
			fmt.Fprintf(w, "data: %s\n\n", chunk)
			fl.Flush()
			if u.delay > 0 {
				time.Sleep(u.delay)
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
	mux.HandleFunc("POST /v1/embeddings", func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		var req struct {
			Input string `json:"input"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Input != embedInput {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.25,-0.5,0.125]}]}`)
	})
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"test-model","object":"model"}]}`)
	})
	mux.HandleFunc("GET /v1/models/{id}", func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"id": r.PathValue("id"), "path": r.URL.EscapedPath(), "query": r.URL.RawQuery})
	})
	mux.HandleFunc("POST /v1/broken", func(w http.ResponseWriter, r *http.Request) {
		u.record(r)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {}\n\n")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the model server dies mid-stream
	})
	u.srv = httptest.NewServer(mux)
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) record(r *http.Request) {
	u.requests.Add(1)
	u.mu.Lock()
	u.headers = append(u.headers, r.Header.Clone())
	u.mu.Unlock()
}

func (u *upstream) lastHeader() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.headers[len(u.headers)-1]
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// env is an upstream behind a gateway on loopback.
type env struct {
	up       *upstream
	keys     *KeySet
	gw       *Gateway
	srv      *httptest.Server
	logs     *syncBuffer
	proxied  atomic.Int64 // gateway requests other than the well-known paths
	fetches  atomic.Int64 // key configuration fetches
	verifies atomic.Int64
}

func newEnv(t testing.TB, mod func(*GatewayConfig)) *env {
	t.Helper()
	e := &env{up: newUpstream(t), logs: &syncBuffer{}}
	var err error
	if e.keys, err = NewKeySet(0); err != nil {
		t.Fatal(err)
	}
	upURL, _ := url.Parse(e.up.srv.URL)
	cfg := GatewayConfig{Upstream: upURL, Keys: e.keys, Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mod != nil {
		mod(&cfg)
	}
	if e.gw, err = NewGateway(cfg); err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == KeysPath {
			e.fetches.Add(1)
		} else if !strings.HasPrefix(r.URL.Path, "/.well-known/") {
			e.proxied.Add(1)
		}
		e.gw.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) url() *url.URL {
	u, _ := url.Parse(e.srv.URL)
	return u
}

// verify accepts exactly the key configurations the gateway's key set
// holds now, as an attestation check bound to them would.
func (e *env) verify(_ context.Context, keyConfigs []byte) (time.Time, error) {
	e.verifies.Add(1)
	if !bytes.Equal(keyConfigs, e.keys.Configs()) {
		return time.Time{}, errors.New("not the attested keys")
	}
	return time.Time{}, nil
}

// transport returns a Transport to the gateway; mod may change its config.
func (e *env) transport(t testing.TB, mod func(*TransportConfig)) *Transport {
	t.Helper()
	cfg := TransportConfig{Gateway: e.url(), Verify: e.verify}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// Requests an OpenAI client would send. The Authorization and Cookie
// headers must be dropped by the Transport.
func chatRequestFor(t testing.TB, base string, stream bool) *http.Request {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "test-model", "stream": stream,
		"messages": []map[string]string{{"role": "user", "content": secretPrompt}}})
	req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	req.Header.Set("Authorization", "Bearer sk-secret-token")
	req.Header.Set("Cookie", "session=secret")
	return req
}

func embeddingsRequest(t testing.TB, base string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/embeddings", strings.NewReader(`{"model":"test-model","input":"`+embedInput+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

// checkChat checks a non-streaming chat completion.
func checkChat(t testing.TB, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 || out.Choices[0].Message.Content != secretAnswer {
		t.Fatalf("answer %s (%v)", b, err)
	}
}

// readEvents reads SSE data lines until [DONE] and returns their content
// deltas; it fails on a stream that ends early.
func readEvents(t testing.TB, r *bufio.Reader) []string {
	t.Helper()
	var toks []string
	for {
		tok, done, err := nextEvent(r)
		if err != nil {
			t.Fatalf("reading the stream after %d events: %v", len(toks), err)
		}
		if done {
			return toks
		}
		toks = append(toks, tok)
	}
}

// nextEvent reads one SSE event's delta content, or done at [DONE].
func nextEvent(r *bufio.Reader) (tok string, done bool, err error) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", false, err
		}
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return "", true, nil
		}
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || len(c.Choices) != 1 {
			return "", false, fmt.Errorf("event %q: %v", data, err)
		}
		return c.Choices[0].Delta.Content, false, nil
	}
}

// slogValue renders v as a JSON log attribute.
func slogValue(v any) string {
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "v", v)
	return b.String()
}

// rtFunc is a RoundTripper made of a function.
type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// rewriteRequests changes the body of every sealed request on its way.
func rewriteRequests(f func([]byte) []byte) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path != KeysPath && r.Body != nil {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			b = f(b)
			r = r.Clone(r.Context())
			r.Body, r.ContentLength, r.GetBody = io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})
}

// rewriteResponses changes the body of every sealed response on its way.
func rewriteResponses(f func([]byte) []byte) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil || resp.Header.Get("Content-Type") != ResponseMediaType {
			return resp, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(f(b)))
		return resp, nil
	})
}

// splitFrames splits a sealed stream after its prefix into frames, each
// with its length field.
func splitFrames(t testing.TB, b []byte, prefix int) (pre []byte, frames [][]byte) {
	t.Helper()
	pre, b = b[:prefix], b[prefix:]
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("%d stray bytes", len(b))
		}
		n := 4 + int(uint32(b[0]&0x7f)<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))
		frames = append(frames, b[:n])
		b = b[n:]
	}
	return pre, frames
}

// requestPrefix is the length of a sealed request's header and enc.
func requestPrefix(b []byte) int {
	k, _ := kemFor(uint16(b[1])<<8 | uint16(b[2]))
	return headerLen + k.nenc
}

func joinFrames(pre []byte, frames [][]byte) []byte {
	return bytes.Join(append([][]byte{pre}, frames...), nil)
}

// problemType returns the problem type of a gateway answer.
func problemType(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var p struct {
		Type string `json:"type"`
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("answer %d with Content-Type %q, want problem+json", resp.StatusCode, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(p.Type, "https://kura.dev/problems/")
}
