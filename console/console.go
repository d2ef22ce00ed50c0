package console

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io"
	"io/fs"
	"net/http"
	"strings"
)

//go:generate sh -c "GOOS=js GOARCH=wasm go build -trimpath -o dist/kura.wasm ./wasm && GOOS=js GOARCH=wasm go build -trimpath -o dist/vault.wasm ./wasm/vault && gzip -9 -f dist/kura.wasm dist/vault.wasm && cp \"$(go env GOROOT)/lib/wasm/wasm_exec.js\" dist/"

//go:embed web
var pages embed.FS

//go:embed dist
var dist embed.FS

// Checks returns the in-browser checks embedded at build time
// (kura.wasm.gz, vault.wasm.gz and wasm_exec.js, written by go generate);
// ok is false when this build has none.
func Checks() (fsys fs.FS, ok bool) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, false
	}
	return sub, hasWasm(sub)
}

// hasWasm reports whether checks holds kura.wasm, gzipped or not.
func hasWasm(checks fs.FS) bool {
	_, gzErr := fs.Stat(checks, "kura.wasm.gz")
	_, err := fs.Stat(checks, "kura.wasm")
	return gzErr == nil || err == nil
}

// programs are the WebAssembly programs the console serves.
var programs = []string{"kura.wasm", "vault.wasm"}

// Handler serves the console at /console/: its pages, and kura.wasm,
// vault.wasm and wasm_exec.js from checks (Checks' when nil). A NAME.gz in
// checks is served as NAME, gzip-encoded to browsers that accept it (a
// quarter of the size) and decompressed for others. Every answer forbids
// framing, sniffing and referrers, and its content security policy lets
// the page run only its own scripts and WebAssembly, and connect to the
// server that served it and, to fetch attestation verifiers' public keys,
// to HTTPS origins and to HTTP on loopback (dev servers); the page sends
// those nothing but GETs.
func Handler(checks fs.FS) http.Handler {
	if checks == nil {
		checks, _ = Checks()
	}
	hasChecks := hasWasm(checks)
	gz := map[string][]byte{} // "/NAME": NAME.gz's bytes
	for _, name := range programs {
		if b, err := fs.ReadFile(checks, name+".gz"); err == nil {
			gz["/"+name] = b
		}
	}
	web, err := fs.Sub(pages, "web")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	files := http.FileServerFS(web)
	wasm := http.FileServerFS(checks)
	return http.StripPrefix("/console", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' https: http://127.0.0.1:* http://localhost:* http://[::1]:*; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the console is read by GET", http.StatusMethodNotAllowed)
		case r.URL.Path == "" || r.URL.Path == "/":
			http.ServeFileFS(w, r, web, "index.html")
		case r.URL.Path == "/kura.wasm" || r.URL.Path == "/vault.wasm" || r.URL.Path == "/wasm_exec.js":
			switch {
			case !hasChecks:
				http.Error(w, "this kura was built without the console's checks (go generate ./console)", http.StatusNotFound)
			case gz[r.URL.Path] != nil:
				serveGzipped(w, r, gz[r.URL.Path])
			default:
				wasm.ServeHTTP(w, r)
			}
		case strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "/index.html":
			http.NotFound(w, r)
		default:
			files.ServeHTTP(w, r)
		}
	}))
}

// serveGzipped answers with the WebAssembly whose gzip encoding is gz:
// as it is to a client that accepts gzip, decompressed to one that does
// not.
func serveGzipped(w http.ResponseWriter, r *http.Request, gz []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/wasm")
	h.Set("Vary", "Accept-Encoding")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		if r.Method == http.MethodGet {
			w.Write(gz)
		}
		return
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		http.Error(w, "the console's checks are damaged", http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodGet {
		io.Copy(w, zr)
	}
}
