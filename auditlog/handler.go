package auditlog

import (
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
// .state directory is not served).
func (l *Log) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /checkpoint", web.Handle(l.log, mapHTTPError, func(w http.ResponseWriter, r *http.Request) error {
		b, err := readCheckpoint(r.Context(), l.src)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, err = w.Write(b)
		return err
	}))
	mux.Handle("GET /tile/", web.Handle(l.log, mapHTTPError, func(w http.ResponseWriter, r *http.Request) error {
		p := strings.TrimPrefix(r.URL.Path, "/")
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || strings.HasPrefix(seg, ".") {
				return fs.ErrNotExist
			}
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
		_, err = w.Write(b)
		return err
	}))
	mux.Handle("GET /proof/{index}", web.Handle(l.log, mapHTTPError, func(w http.ResponseWriter, r *http.Request) error {
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
		w.Header().Set("Cache-Control", "no-cache")
		return web.WriteJSON(w, http.StatusOK, p)
	}))
	return mux
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
