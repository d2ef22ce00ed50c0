//go:build !js

package auditlog

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/internal/web"
)

// Handler serves the log read-only, in the C2SP tlog-tiles layout
// (GET /checkpoint, /tile/<L>/<N>[.p/<W>], /tile/entries/<N>[.p/<W>]),
// plus GET /proof/<index>, the proof JSON of docs/spec/auditlog.md §5
// against the latest checkpoint. Mount it under a prefix with
// http.StripPrefix, e.g. mux.Handle("/log/", http.StripPrefix("/log", h)).
// Nothing outside checkpoint and tile/ is reachable (Tessera's private
// .state directory is not served), and a path under tile/ outside the
// tlog-tiles layout is 404. A read whose client went away is answered 499
// (client-closed) and not logged as a server error.
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /checkpoint", l.handle(func(w http.ResponseWriter, r *http.Request) error {
		b, err := readCheckpoint(r.Context(), l.src)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		l.write(w, r, b)
		return nil
	}))
	mux.Handle("GET /tile/", l.handle(func(w http.ResponseWriter, r *http.Request) error {
		p := strings.TrimPrefix(r.URL.Path, "/")
		if !validTilePath(p) {
			return fs.ErrNotExist
		}
		limit := int64(maxTileSize)
		if strings.HasPrefix(p, "tile/entries/") {
			limit = maxBundleSize
		}
		b, err := l.src.get(r.Context(), p, limit)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if strings.Contains(p, ".p/") {
			w.Header().Set("Cache-Control", "no-cache")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		l.write(w, r, b)
		return nil
	}))
	mux.Handle("GET /proof/{index}", l.handle(func(w http.ResponseWriter, r *http.Request) error {
		i, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
		if err != nil {
			return web.NewProblem(http.StatusBadRequest, "bad-index", "index must be a decimal entry number", err)
		}
		raw, cp, err := l.Checkpoint(r.Context())
		if err != nil {
			return err
		}
		if i >= cp.Size {
			return web.NewProblem(http.StatusNotFound, "not-yet-logged", "no checkpoint covers entry "+strconv.FormatUint(i, 10)+" yet (log size "+strconv.FormatUint(cp.Size, 10)+"); retry shortly", nil)
		}
		p, err := buildProof(r.Context(), l.src, i, raw, cp)
		if err != nil {
			return err
		}
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		l.write(w, r, append(b, '\n'))
		return nil
	}))
	return mux
}

// statusClientClosed is the status recorded (nginx's 499) when the client
// went away before its answer was ready; nobody receives it.
const statusClientClosed = 499

// handle adapts a read handler: a failure after the client went away (its
// request's context is done) is the client's doing, not a server error, and
// is answered and logged as such.
func (l *Log) handle(h web.HandlerFunc) http.Handler {
	return web.Handle(l.log, mapHTTPError, func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		if err != nil && r.Context().Err() != nil {
			return web.NewProblem(statusClientClosed, "client-closed", "the client closed the request", err)
		}
		return err
	})
}

// write sends an answer's body. Once the status is sent nothing else can
// be answered, and a failure to send is the connection's (the client went
// away): it is logged at debug, not as a server error.
func (l *Log) write(w http.ResponseWriter, r *http.Request, b []byte) {
	if _, err := w.Write(b); err != nil {
		l.log.DebugContext(r.Context(), "log read not delivered", "path", r.URL.Path, "err", err)
	}
}

// validTilePath reports whether p names a tile or entry bundle in the
// C2SP tlog-tiles layout: tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>],
// where <N> is zero or more x<3 digits> segments then <3 digits>, <L> one
// or two digits and <W> one to three.
func validTilePath(p string) bool {
	segs := strings.Split(p, "/")
	if len(segs) < 3 || segs[0] != "tile" || segs[1] != "entries" && !digits(segs[1], 1, 2) {
		return false
	}
	n := segs[2:]
	if last := len(n) - 1; last >= 1 && strings.HasSuffix(n[last-1], ".p") {
		if !digits(n[last], 1, 3) {
			return false
		}
		n = append(n[:last-1:last-1], strings.TrimSuffix(n[last-1], ".p"))
	}
	for i, s := range n {
		if i < len(n)-1 {
			var ok bool
			if s, ok = strings.CutPrefix(s, "x"); !ok {
				return false
			}
		}
		if !digits(s, 3, 3) {
			return false
		}
	}
	return true
}

// digits reports whether s is lo to hi ASCII digits.
func digits(s string, lo, hi int) bool {
	if len(s) < lo || len(s) > hi {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func mapHTTPError(err error) *web.Problem {
	var p *web.Problem
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, fs.ErrNotExist):
		return web.NewProblem(http.StatusNotFound, "not-found", "no such log resource", err)
	}
	return web.NewProblem(http.StatusInternalServerError, "internal", "the audit log could not be read", err)
}
