package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/veraison/ear"

	"github.com/kura-cc/kura/token"
)

// TestBareHandler: the baseline answers the resource route only for a
// token signed by the verifier whose keys it fetched, and refuses a
// missing, tampered or foreign one (401) without panicking.
func TestBareHandler(t *testing.T) {
	issuer := func() *token.Issuer {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		i, err := token.NewIssuer(token.IssuerConfig{Key: k, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	ours, theirs := issuer(), issuer()
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(ours.JWKS()) }))
	defer jwks.Close()
	h, err := bareHandler(t.Context(), jwks.URL, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	issue := func(i *token.Issuer) string {
		tok, err := i.Issue(&token.Claims{Nonce: make([]byte, 32), RuntimePublicKey: []byte(`{"kty":"EC"}`),
			Submods: map[string]token.Submod{"cpu0": {Status: ear.TrustTierAffirming, PolicyID: "test", Evidence: map[string]any{"tee": "sim"}}}})
		if err != nil {
			t.Fatal(err)
		}
		return string(tok)
	}
	good := issue(ours)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"valid", "Bearer " + good, 200},
		{"valid again (remembered)", "Bearer " + good, 200},
		{"none", "", 401},
		{"not bearer", "Basic " + good, 401},
		{"tampered", "Bearer " + good[:len(good)-4] + "AAAA", 401},
		{"another verifier", "Bearer " + issue(theirs), 401},
		{"garbage", "Bearer \x00\xff", 401},
	} {
		req := httptest.NewRequest(http.MethodGet, "/kbs/v0/resource/a/b/c", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d, want %d (%s)", tc.name, rec.Code, tc.want, rec.Body)
		}
		if tc.want == 200 && rec.Body.String() != `{"ok":true}` {
			t.Errorf("%s: body %q", tc.name, rec.Body)
		}
	}
}

// TestLoadConnAnswers: the load generator's HTTP/1.1 reader takes a
// well-formed answer and refuses malformed ones with an error.
func TestLoadConnAnswers(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		ok           bool
	}{
		{"ok", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\ncontent-length: 2\r\n\r\nhi", true},
		{"empty body", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", true},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false},
		{"short status", "HTTP/1.1 2\r\n\r\n", false},
		{"bad status", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nhi", false},
		{"negative length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false},
		{"huge length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", false},
		{"bad header", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", false},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhi", false},
		{"truncated head", "HTTP/1.1 200 OK\r\nContent-Len", false},
	} {
		client, server := net.Pipe()
		go func() {
			bufio.NewReader(server).ReadString('\n') // the request line is enough
			server.Write([]byte(tc.answer))
			server.Close()
		}()
		lc := &loadConn{c: client, br: bufio.NewReader(client), req: []byte("GET / HTTP/1.1\r\n\r\n")}
		status, body, err := lc.do()
		if tc.ok != (err == nil) {
			t.Errorf("%s: %d %q, %v", tc.name, status, body, err)
		}
		if tc.ok && !strings.HasSuffix(tc.answer, string(body)) {
			t.Errorf("%s: body %q", tc.name, body)
		}
		client.Close()
	}
}

// TestRunLoadPaced: a paced run sends about rate*d requests and measures
// each from its scheduled time; a server error stops the run with it.
func TestRunLoadPaced(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Fail") != "" {
			http.Error(w, "no", http.StatusTeapot)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	req := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	r, err := runLoad(context.Background(), loadTarget{addr: addr, req: req}, 2, 200, 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.ok != 50 || len(r.lat) != 50 || p99(r.lat) <= 0 {
		t.Errorf("paced: %d ok, %d latencies, p99 %s", r.ok, len(r.lat), p99(r.lat))
	}
	bad := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nX-Fail: 1\r\n\r\n")
	if _, err := runLoad(context.Background(), loadTarget{addr: addr, req: bad}, 2, 0, time.Second); err == nil || !strings.Contains(err.Error(), "418") {
		t.Errorf("failing server: %v", err)
	}
}
