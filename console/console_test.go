package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// TestHandler: the console serves its pages and checks with its security
// headers, only to GET and HEAD, lists no directory, and says so when the
// build has no checks; gzipped checks go to a browser as they are, with
// their encoding, and decompressed to a client that does not take gzip.
func TestHandler(t *testing.T) {
	checks := fstest.MapFS{"kura.wasm": {Data: []byte("\x00asm")}, "wasm_exec.js": {Data: []byte("// go")}}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("\x00asm"))
	zw.Close()
	gzipped := fstest.MapFS{"kura.wasm.gz": {Data: gz.Bytes()}, "vault.wasm.gz": {Data: gz.Bytes()}, "wasm_exec.js": {Data: []byte("// go")}}
	for name, tc := range map[string]struct {
		checks            fstest.MapFS
		method, path      string
		status            int
		body, contentType string
	}{
		"index":            {checks, "GET", "/console/", 200, "<title>kura console</title>", "text/html; charset=utf-8"},
		"script":           {checks, "GET", "/console/app.js", 200, "verifyCollaboration", "text/javascript; charset=utf-8"},
		"checks":           {checks, "GET", "/console/kura.wasm", 200, "\x00asm", "application/wasm"},
		"head":             {checks, "HEAD", "/console/", 200, "", "text/html; charset=utf-8"},
		"post":             {checks, "POST", "/console/", 405, "read by GET", ""},
		"no file":          {checks, "GET", "/console/secret.txt", 404, "", ""},
		"no listing":       {checks, "GET", "/console/web/", 404, "", ""},
		"dist not served":  {checks, "GET", "/console/README.md", 404, "", ""},
		"build without":    {fstest.MapFS{}, "GET", "/console/kura.wasm", 404, "go generate ./console", ""},
		"gzipped, decoded": {gzipped, "GET", "/console/kura.wasm", 200, "\x00asm", "application/wasm"},
		"vault":            {gzipped, "GET", "/console/vault.wasm", 200, "\x00asm", "application/wasm"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Handler(tc.checks).ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil)) // no Accept-Encoding
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("%s %s: %d %q", tc.method, tc.path, res.StatusCode, body)
			}
			if tc.contentType != "" && res.Header.Get("Content-Type") != tc.contentType {
				t.Errorf("Content-Type %q", res.Header.Get("Content-Type"))
			}
			h := res.Header
			if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("security headers: %v", h)
			}
		})
	}
	// To a browser, the gzip encoding as it is.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/console/kura.wasm", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	Handler(gzipped).ServeHTTP(rec, req)
	if res := rec.Result(); res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Content-Type") != "application/wasm" || !bytes.Equal(rec.Body.Bytes(), gz.Bytes()) {
		t.Fatalf("gzip: %v %q", res.Header, rec.Body.Bytes())
	}
}
