package inference

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func allSuites() []Suite {
	return []Suite{
		{KEMX25519, KDFHKDFSHA256, AEADAES128GCM},
		{KEMX25519, KDFHKDFSHA256, AEADChaCha20Poly1305},
		{KEMMLKEM768X25519, KDFHKDFSHA256, AEADAES128GCM},
		{KEMMLKEM768X25519, KDFHKDFSHA256, AEADChaCha20Poly1305},
	}
}

// TestEndToEnd sends a chat completion, a streamed one and an embedding
// through Transport → Gateway → model server with every suite, and checks
// the suite on the wire and the headers the model server got.
func TestEndToEnd(t *testing.T) {
	e := newEnv(t, nil)
	for _, s := range allSuites() {
		t.Run(s.String(), func(t *testing.T) {
			var mu sync.Mutex
			var sent [][]byte
			rec := rtFunc(func(r *http.Request) (*http.Response, error) {
				if r.URL.Path != KeysPath {
					b, _ := io.ReadAll(r.Body)
					mu.Lock()
					sent = append(sent, b)
					mu.Unlock()
					r = r.Clone(r.Context())
					r.Body = io.NopCloser(bytes.NewReader(b))
				}
				return http.DefaultTransport.RoundTrip(r)
			})
			tr := e.transport(t, func(c *TransportConfig) { c.Suites = []Suite{s}; c.Base = rec })
			c := &http.Client{Transport: tr}
			base := "http://model.internal"

			resp, err := c.Do(chatRequestFor(t, base, false))
			if err != nil {
				t.Fatal(err)
			}
			checkChat(t, resp)
			h := e.up.lastHeader()
			if h.Get("Authorization") != "" || h.Get("Cookie") != "" || h.Get("Content-Type") != "application/json" {
				t.Errorf("the model server got headers %v", h)
			}

			resp, err = c.Do(chatRequestFor(t, base, true))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Upstream-Secret") != "" {
				t.Fatalf("stream answer %d %v", resp.StatusCode, resp.Header)
			}
			if got := readEvents(t, bufio.NewReader(resp.Body)); !slices.Equal(got, sseTokens()) {
				t.Fatalf("tokens %q", got)
			}
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Fatalf("end of the stream: %v", err)
			}
			resp.Body.Close()
			if got := e.up.lastHeader().Get("Accept"); got != "text/event-stream" {
				t.Errorf("the model server got Accept %q", got)
			}

			resp, err = c.Do(embeddingsRequest(t, base))
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Contains(b, []byte(`"embedding":[0.25,-0.5,0.125]`)) {
				t.Fatalf("embeddings %d %s %v", resp.StatusCode, b, err)
			}

			resp, err = c.Get(base + "/v1/models")
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(b, []byte("test-model")) {
				t.Fatalf("models %d %s", resp.StatusCode, b)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(sent) != 4 {
				t.Fatalf("%d sealed requests", len(sent))
			}
			for _, b := range sent {
				h := requestHeader{keyID: b[0], suite: Suite{binary.BigEndian.Uint16(b[1:]), binary.BigEndian.Uint16(b[3:]), binary.BigEndian.Uint16(b[5:])}}
				if h.suite != s {
					t.Fatalf("sealed with %s", h.suite)
				}
			}
		})
	}
	// The inner status travels sealed: a model server's 400 is a 200 on
	// the wire and a 400 to the client.
	t.Run("inner status", func(t *testing.T) {
		c := &http.Client{Transport: e.transport(t, nil)}
		req := embeddingsRequest(t, "http://model.internal")
		req.Body = io.NopCloser(strings.NewReader(`{"input":"something else"}`))
		req.ContentLength = -1
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	// The gateway logs no content, inner header or key.
	logs := e.logs.Bytes()
	if !bytes.Contains(logs, []byte(`"path":"/v1/chat/completions"`)) {
		t.Fatalf("no access log line in %s", logs)
	}
	for _, s := range append([]string{secretPrompt, secretAnswer, embedInput, "text/event-stream", "application/json", "sk-secret-token"}, sseTokens()...) {
		if bytes.Contains(logs, []byte(s)) {
			t.Errorf("the gateway logged %q", s)
		}
	}
}

// recordingConn records every byte read and written on a connection.
type recordingConn struct {
	net.Conn
	rec *syncBuffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rec.Write(p[:n])
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.rec.Write(p)
	return c.Conn.Write(p)
}

// TestWireCarriesNoContent records every byte between client and gateway
// and looks for the prompt, the answer, the tokens and the inner headers.
func TestWireCarriesNoContent(t *testing.T) {
	e := newEnv(t, nil)
	rec := &syncBuffer{}
	base := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &recordingConn{Conn: c, rec: rec}, nil
	}}
	defer base.CloseIdleConnections()
	c := &http.Client{Transport: e.transport(t, func(c *TransportConfig) { c.Base = base })}
	resp, err := c.Do(chatRequestFor(t, "http://x", false))
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, resp)
	resp, err = c.Do(chatRequestFor(t, "http://x", true))
	if err != nil {
		t.Fatal(err)
	}
	if got := readEvents(t, bufio.NewReader(resp.Body)); !slices.Equal(got, sseTokens()) {
		t.Fatalf("tokens %q", got)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = c.Do(embeddingsRequest(t, "http://x"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	wire := rec.Bytes()
	for _, want := range []string{RequestMediaType, ResponseMediaType, "POST /v1/chat/completions", "POST /v1/embeddings", "GET " + KeysPath} {
		if !bytes.Contains(wire, []byte(want)) {
			t.Fatalf("the recording lacks %q: not the client-gateway connection?", want)
		}
	}
	if bytes.Contains(wire, []byte("User-Agent")) {
		t.Error("the client sends a User-Agent")
	}
	secrets := append([]string{secretPrompt, secretAnswer, embedInput, "application/json", "text/event-stream", "sk-secret-token", "session=secret", "test-model", "chat.completion"}, sseTokens()...)
	for _, s := range secrets {
		if bytes.Contains(wire, []byte(s)) {
			t.Errorf("%q travels in the clear", s)
		}
	}
}

// TestStreaming checks that the client reads the first event while the
// model server still holds back the last one.
func TestStreaming(t *testing.T) {
	e := newEnv(t, nil)
	e.up.hold = make(chan struct{})
	e.up.delay = 0
	c := &http.Client{Transport: e.transport(t, nil)}
	first := make(chan string, 1)
	rest := make(chan []string, 1)
	errc := make(chan error, 2)
	go func() {
		resp, err := c.Do(chatRequestFor(t, "http://x", true))
		if err != nil {
			errc <- err
			return
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		tok, _, err := nextEvent(br)
		if err != nil {
			errc <- err
			return
		}
		first <- tok
		var toks []string
		for {
			tok, done, err := nextEvent(br)
			if err != nil {
				errc <- err
				return
			}
			if done {
				break
			}
			toks = append(toks, tok)
		}
		rest <- toks
	}()
	// A hang here means the gateway or the client buffered the stream: the
	// model server will not finish before the client has the first event.
	select {
	case tok := <-first:
		if tok != sseTokens()[0] {
			t.Fatalf("first event %q", tok)
		}
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("the first event did not arrive before the model server finished: the stream is buffered")
	}
	close(e.up.hold)
	select {
	case toks := <-rest:
		if !slices.Equal(toks, sseTokens()[1:]) {
			t.Fatalf("rest %q", toks)
		}
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not finish")
	}
}

func TestVerifyFailsClosed(t *testing.T) {
	e := newEnv(t, nil)
	refused := errors.New("attestation refused")
	tr := e.transport(t, func(c *TransportConfig) {
		c.Verify = func(context.Context, []byte) (time.Time, error) { return time.Time{}, refused }
	})
	_, err := tr.RoundTrip(chatRequestFor(t, "http://x", false))
	if !errors.Is(err, refused) {
		t.Fatalf("err = %v", err)
	}
	if n := e.proxied.Load(); n != 0 {
		t.Fatalf("the gateway saw %d requests", n)
	}
	if n := e.up.requests.Load(); n != 0 {
		t.Fatalf("the model server saw %d requests", n)
	}
}

func TestTampered(t *testing.T) {
	e := newEnv(t, nil)
	flipLast := func(b []byte) []byte { b = bytes.Clone(b); b[len(b)-3] ^= 1; return b }
	t.Run("request", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) { c.Base = rewriteRequests(flipLast) })
		before := e.up.requests.Load()
		if _, err := tr.RoundTrip(chatRequestFor(t, "http://x", false)); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
		if e.up.requests.Load() != before {
			t.Fatal("a tampered request reached the model server")
		}
	})
	t.Run("request header", func(t *testing.T) {
		// enc is bound: changing one of its bytes makes the first frame fail.
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteRequests(func(b []byte) []byte { b = bytes.Clone(b); b[headerLen+5] ^= 1; return b })
			c.Suites = []Suite{{KEMMLKEM768X25519, KDFHKDFSHA256, AEADAES128GCM}}
		})
		if _, err := tr.RoundTrip(chatRequestFor(t, "http://x", false)); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("response head", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteResponses(func(b []byte) []byte { b = bytes.Clone(b); b[30] ^= 1; return b })
		})
		if _, err := tr.RoundTrip(chatRequestFor(t, "http://x", false)); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("response body", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteResponses(func(b []byte) []byte {
				pre, fs := splitFrames(t, b, 16)
				fs[1] = bytes.Clone(fs[1])
				fs[1][10] ^= 0x80
				return joinFrames(pre, fs)
			})
		})
		resp, err := tr.RoundTrip(chatRequestFor(t, "http://x", true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestTruncated(t *testing.T) {
	e := newEnv(t, nil)
	t.Run("request", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteRequests(func(b []byte) []byte {
				pre, fs := splitFrames(t, b, requestPrefix(b))
				return joinFrames(pre, fs[:len(fs)-1])
			})
		})
		if _, err := tr.RoundTrip(chatRequestFor(t, "http://x", false)); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("request final bit cleared", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteRequests(func(b []byte) []byte {
				pre, fs := splitFrames(t, b, requestPrefix(b))
				last := bytes.Clone(fs[len(fs)-1])
				last[0] &^= 0x80
				return joinFrames(pre, append(fs[:len(fs)-1], last))
			})
		})
		if _, err := tr.RoundTrip(chatRequestFor(t, "http://x", false)); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("response", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteResponses(func(b []byte) []byte {
				pre, fs := splitFrames(t, b, 16)
				return joinFrames(pre, fs[:len(fs)-1])
			})
		})
		resp, err := tr.RoundTrip(chatRequestFor(t, "http://x", true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
		if !bytes.Contains(b, []byte("[DONE]")) {
			t.Fatalf("the frames before the cut were not delivered: %q", b)
		}
	})
	t.Run("response trailing data", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteResponses(func(b []byte) []byte { return append(bytes.Clone(b), 0, 0, 0, 0) })
		})
		resp, err := tr.RoundTrip(chatRequestFor(t, "http://x", false))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestReordered(t *testing.T) {
	e := newEnv(t, nil)
	t.Run("request", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteRequests(func(b []byte) []byte {
				pre, fs := splitFrames(t, b, requestPrefix(b))
				if len(fs) < 4 {
					t.Errorf("%d frames", len(fs))
					return b
				}
				fs[1], fs[2] = fs[2], fs[1]
				return joinFrames(pre, fs)
			})
		})
		req := chatRequestFor(t, "http://x", false)
		big := strings.Repeat("x", 2*MaxFrameSize+10)
		req.Body = io.NopCloser(strings.NewReader(big))
		req.ContentLength = int64(len(big))
		if _, err := tr.RoundTrip(req); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("response", func(t *testing.T) {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteResponses(func(b []byte) []byte {
				pre, fs := splitFrames(t, b, 16)
				fs[1], fs[2] = fs[2], fs[1]
				return joinFrames(pre, fs)
			})
		})
		resp, err := tr.RoundTrip(chatRequestFor(t, "http://x", true))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, ErrTampered) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestReplay(t *testing.T) {
	e := newEnv(t, nil)
	var sealed []byte
	tr := e.transport(t, func(c *TransportConfig) {
		c.Base = rewriteRequests(func(b []byte) []byte { sealed = bytes.Clone(b); return b })
	})
	resp, err := tr.RoundTrip(chatRequestFor(t, "http://x", false))
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, resp)
	before := e.up.requests.Load()
	resp, err = http.Post(e.srv.URL+"/v1/chat/completions", RequestMediaType, bytes.NewReader(sealed))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusConflict || problemType(t, resp) != "inference-replay" {
		t.Fatalf("replay answered %d", resp.StatusCode)
	}
	if e.up.requests.Load() != before {
		t.Fatal("the replay reached the model server")
	}
}

func TestStaleKey(t *testing.T) {
	e := newEnv(t, nil)
	c := &http.Client{Transport: e.transport(t, nil)}
	resp, err := c.Do(chatRequestFor(t, "http://x", false))
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, resp)
	// One rotation keeps the old key as the previous one: still accepted.
	if err := e.keys.Rotate(); err != nil {
		t.Fatal(err)
	}
	resp, err = c.Do(chatRequestFor(t, "http://x", false))
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, resp)
	if e.fetches.Load() != 1 {
		t.Fatalf("%d key fetches", e.fetches.Load())
	}
	// A second retires it: 422, then the transport fetches and verifies
	// the new keys and sends the request again.
	if err := e.keys.Rotate(); err != nil {
		t.Fatal(err)
	}
	resp, err = c.Do(chatRequestFor(t, "http://x", false))
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, resp)
	if f, v, p := e.fetches.Load(), e.verifies.Load(), e.proxied.Load(); f != 2 || v != 2 || p != 4 {
		t.Fatalf("fetches %d, verifies %d, requests %d; want 2, 2, 4", f, v, p)
	}
}

func TestUnknownKeyID(t *testing.T) {
	e := newEnv(t, nil)
	t.Run("direct", func(t *testing.T) {
		cfgs, _ := ParseKeyConfigs(e.keys.Configs())
		k, err := choose(cfgs, defaultSuites())
		if err != nil {
			t.Fatal(err)
		}
		wire, _, _, err := sealRequest(0xee, k.pub, k.suite, []byte(`{"headers":{}}`), nil, MaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(e.srv.URL+"/v1/models", RequestMediaType, bytes.NewReader(wire))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnprocessableEntity || problemType(t, resp) != "inference-unknown-key" {
			t.Fatalf("answered %d", resp.StatusCode)
		}
	})
	t.Run("transport refetches once", func(t *testing.T) {
		fetches := e.fetches.Load()
		tr := e.transport(t, func(c *TransportConfig) {
			c.Base = rewriteRequests(func(b []byte) []byte { b = bytes.Clone(b); b[0] = 0xee; return b })
		})
		if _, err := tr.RoundTrip(chatRequestFor(t, "http://x", false)); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v", err)
		}
		if n := e.fetches.Load() - fetches; n != 2 {
			t.Fatalf("%d key fetches, want 2", n)
		}
	})
}

func TestNotEncrypted(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		problem                 string
	}{
		{"plain JSON", "application/json", `{"messages":[{"role":"user","content":"hi"}]}`, 415, "inference-not-encrypted"},
		{"no content type", "", "hello", 415, "inference-not-encrypted"},
		{"sealed type, short", RequestMediaType, "hello", 400, "inference-malformed"},
		{"sealed type, garbage", RequestMediaType, "\x01\x00\x20\x00\x01\x00\x01" + strings.Repeat("A", 32) + "\x80\x00\x00\x20" + strings.Repeat("B", 32), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/chat/completions", strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.status == 0 { // a key id the gateway may or may not hold
				if resp.StatusCode != 400 && resp.StatusCode != 422 {
					t.Fatalf("answered %d", resp.StatusCode)
				}
				resp.Body.Close()
				return
			}
			if resp.StatusCode != tc.status || problemType(t, resp) != tc.problem {
				t.Fatalf("answered %d", resp.StatusCode)
			}
		})
	}
	if e.up.requests.Load() != 0 {
		t.Fatal("the model server was reached")
	}
}

func TestTooLarge(t *testing.T) {
	e := newEnv(t, func(c *GatewayConfig) { c.MaxRequestBytes = 4 << 10 })
	big := func() *http.Request {
		req := chatRequestFor(t, "http://x", false)
		b := strings.Repeat("y", 8<<10)
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(b)), int64(len(b))
		return req
	}
	t.Run("gateway", func(t *testing.T) {
		if _, err := e.transport(t, nil).RoundTrip(big()); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("gateway, no length", func(t *testing.T) {
		cfgs, _ := ParseKeyConfigs(e.keys.Configs())
		k, err := choose(cfgs, defaultSuites())
		if err != nil {
			t.Fatal(err)
		}
		wire, _, _, err := sealRequest(k.cfg.KeyID, k.pub, k.suite, []byte(`{"headers":{}}`), make([]byte, 8<<10), MaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		pr, pw := io.Pipe()
		go func() { pw.Write(wire); pw.Close() }()
		resp, err := http.Post(e.srv.URL+"/v1/chat/completions", RequestMediaType, pr)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("answered %d", resp.StatusCode)
		}
		resp.Body.Close()
	})
	t.Run("transport", func(t *testing.T) {
		proxied := e.proxied.Load()
		tr := e.transport(t, func(c *TransportConfig) { c.MaxRequestBytes = 1 << 10 })
		if _, err := tr.RoundTrip(big()); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
		if e.proxied.Load() != proxied {
			t.Fatal("an oversized request was sent")
		}
	})
}

func TestUpstreamDown(t *testing.T) {
	e := newEnv(t, nil)
	e.up.srv.Close()
	_, err := e.transport(t, nil).RoundTrip(chatRequestFor(t, "http://x", false))
	if !errors.Is(err, ErrUpstream) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), e.up.srv.Listener.Addr().String()) {
		t.Fatalf("the client was told the model server's address: %v", err)
	}
}

// TestKeyCache checks when the Transport fetches and verifies the keys
// again: after MaxAge and when Verify's answer expires.
func TestKeyCache(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	var verifyUntil time.Duration
	tr := e.transport(t, func(c *TransportConfig) {
		c.Now, c.MaxAge = clock, time.Hour
		c.Verify = func(ctx context.Context, b []byte) (time.Time, error) {
			if _, err := e.verify(ctx, b); err != nil {
				return time.Time{}, err
			}
			if verifyUntil == 0 {
				return time.Time{}, nil
			}
			return clock().Add(verifyUntil), nil
		}
	})
	do := func() {
		t.Helper()
		resp, err := tr.RoundTrip(chatRequestFor(t, "http://x", false))
		if err != nil {
			t.Fatal(err)
		}
		checkChat(t, resp)
	}
	want := func(n int64) {
		t.Helper()
		if got := e.verifies.Load(); got != n {
			t.Fatalf("%d verifications, want %d", got, n)
		}
	}
	do()
	advance(59 * time.Minute)
	do()
	want(1)
	advance(2 * time.Minute)
	do()
	want(2)
	verifyUntil = time.Minute
	advance(time.Hour)
	do()
	want(3)
	advance(30 * time.Second)
	do()
	want(3)
	advance(time.Minute)
	do()
	want(4)
}

func TestKeySetRotation(t *testing.T) {
	ks, err := NewKeySet(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ks.now = func() time.Time { return now }
	ks.rotatedAt = now
	first := ks.Configs()
	cfgs, err := ParseKeyConfigs(first)
	if err != nil || len(cfgs) != 2 || cfgs[0].KEM != KEMMLKEM768X25519 || cfgs[1].KEM != KEMX25519 {
		t.Fatalf("configs %+v, %v", cfgs, err)
	}
	now = now.Add(59 * time.Minute)
	if !bytes.Equal(ks.Configs(), first) {
		t.Fatal("rotated early")
	}
	now = now.Add(time.Minute)
	second, _ := ParseKeyConfigs(ks.Configs())
	if second[0].KeyID == cfgs[0].KeyID || bytes.Equal(second[0].PublicKey, cfgs[0].PublicKey) {
		t.Fatal("did not rotate")
	}
	if _, err := ks.lookup(requestHeader{cfgs[0].KeyID, Suite{KEMMLKEM768X25519, KDFHKDFSHA256, AEADAES128GCM}}); err != nil {
		t.Fatalf("the previous key: %v", err)
	}
	if _, err := ks.lookup(requestHeader{cfgs[0].KeyID, Suite{KEMX25519, KDFHKDFSHA256, AEADAES128GCM}}); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a key id with another KEM: %v", err)
	}
	if s := slogValue(ks); strings.Contains(s, "PrivateKey") || !strings.Contains(s, "REDACTED") {
		t.Fatalf("logged as %s", s)
	}
}

// TestReplaySetFull checks that a full replay set rotates the keys rather
// than forget, and that the full key accepts nothing more.
func TestReplaySetFull(t *testing.T) {
	e := newEnv(t, nil)
	e.keys.maxSeen = 2
	before, _ := ParseKeyConfigs(e.keys.Configs())
	c := &http.Client{Transport: e.transport(t, func(c *TransportConfig) {
		c.Suites = []Suite{{KEMX25519, KDFHKDFSHA256, AEADAES128GCM}}
	})}
	var sealed [][]byte
	for range 2 {
		tr := e.transport(t, func(c *TransportConfig) {
			c.Suites = []Suite{{KEMX25519, KDFHKDFSHA256, AEADAES128GCM}}
			c.Base = rewriteRequests(func(b []byte) []byte { sealed = append(sealed, bytes.Clone(b)); return b })
		})
		resp, err := tr.RoundTrip(chatRequestFor(t, "http://x", false))
		if err != nil {
			t.Fatal(err)
		}
		checkChat(t, resp)
	}
	after, _ := ParseKeyConfigs(e.keys.Configs())
	if after[1].KeyID == before[1].KeyID {
		t.Fatal("a full replay set did not rotate the keys")
	}
	// Both requests are still refused as replays or under a full key,
	// never answered again.
	for _, b := range sealed {
		resp, err := http.Post(e.srv.URL+"/v1/chat/completions", RequestMediaType, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("a replay answered %d", resp.StatusCode)
		}
	}
	// A fresh client gets the new keys.
	resp, err := c.Do(chatRequestFor(t, "http://x", false))
	if err != nil {
		t.Fatal(err)
	}
	checkChat(t, resp)
}

func TestNewTransportRefuses(t *testing.T) {
	e := newEnv(t, nil)
	for name, mod := range map[string]func(*TransportConfig){
		"no verify":   func(c *TransportConfig) { c.Verify = nil },
		"path":        func(c *TransportConfig) { c.Gateway = c.Gateway.JoinPath("v1") },
		"bad suite":   func(c *TransportConfig) { c.Suites = []Suite{{KEMX25519, KDFHKDFSHA256, 0x0002}} },
		"no gateway":  func(c *TransportConfig) { c.Gateway = nil },
		"negative ma": func(c *TransportConfig) { c.MaxAge = -1 },
	} {
		cfg := TransportConfig{Gateway: e.url(), Verify: e.verify}
		mod(&cfg)
		if _, err := NewTransport(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGatewayRefusesPlaintextAnswerOnClient(t *testing.T) {
	// A gateway (or anything posing as one) that answers in plaintext is
	// refused: the client never falls back.
	e := newEnv(t, nil)
	tr := e.transport(t, func(c *TransportConfig) {
		c.Base = rtFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == KeysPath {
				return http.DefaultTransport.RoundTrip(r)
			}
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(`{"choices":[]}`))}, nil
		})
	})
	if _, err := tr.RoundTrip(chatRequestFor(t, "http://x", false)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v", err)
	}
}

func TestAttestationServed(t *testing.T) {
	e := newEnv(t, func(c *GatewayConfig) {
		c.Attestation = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "document") })
	})
	resp, err := http.Get(e.srv.URL + AttestationPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "document" {
		t.Fatalf("got %q", b)
	}
	resp, err = http.Get(e.srv.URL + KeysPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Type") != KeysMediaType || !bytes.Equal(b, e.keys.Configs()) {
		t.Fatalf("keys %q %x", resp.Header.Get("Content-Type"), b)
	}
}

// TestPathAndQuery checks that the path, escapes included, and the query
// reach the model server.
func TestPathAndQuery(t *testing.T) {
	e := newEnv(t, nil)
	c := &http.Client{Transport: e.transport(t, nil)}
	resp, err := c.Get("http://x/v1/models/org%2Fmodel?verbose=1&x=%20")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"org/model","path":"/v1/models/org%2Fmodel","query":"verbose=1\u0026x=%20"}` + "\n"; string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
}

// TestUpstreamDiesMidStream checks that a stream the model server breaks
// off reaches the client as an error, not as a shorter answer.
func TestUpstreamDiesMidStream(t *testing.T) {
	e := newEnv(t, nil)
	req, _ := http.NewRequest(http.MethodPost, "http://x/v1/broken", strings.NewReader("{}"))
	resp, err := e.transport(t, nil).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, ErrTampered) || string(b) != "data: {}\n\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	if !bytes.Contains(e.logs.Bytes(), []byte("inference response cut short")) {
		t.Fatalf("logs: %s", e.logs.Bytes())
	}
}
