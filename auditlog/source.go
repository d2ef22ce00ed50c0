package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/transparency-dev/tessera/api/layout"
)

// Size limits on what a reader accepts from a log, so a hostile server
// cannot exhaust memory.
const (
	maxCheckpointSize = 64 << 10
	maxTileSize       = layout.TileWidth * 32
	maxBundleSize     = layout.EntryBundleWidth * (2 + MaxEntrySize)
)

// source reads a log's public tlog-tiles resources. Missing resources are
// reported with an error wrapping fs.ErrNotExist.
type source interface {
	get(ctx context.Context, path string, limit int64) ([]byte, error)
	String() string
}

// openSource returns a source for a directory or an http(s) URL.
func openSource(loc string, hc *http.Client) (source, error) {
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		u, err := url.Parse(loc)
		if err != nil {
			return nil, fmt.Errorf("log URL %q: %w", loc, err)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		if hc == nil {
			hc = http.DefaultClient
		}
		return &httpSource{base: u, hc: hc}, nil
	}
	root, err := os.OpenRoot(loc)
	if err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	return &dirSource{dir: loc, root: root}, nil
}

type dirSource struct {
	dir  string
	root *os.Root
}

func (d *dirSource) String() string { return d.dir }

func (d *dirSource) get(ctx context.Context, p string, limit int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := d.root.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, p, limit)
}

type httpSource struct {
	base *url.URL
	hc   *http.Client
}

func (h *httpSource) String() string { return h.base.String() }

func (h *httpSource) get(ctx context.Context, p string, limit int64) ([]byte, error) {
	u := h.base.JoinPath(p)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("fetch %s: %w", u, fs.ErrNotExist)
	default:
		return nil, fmt.Errorf("fetch %s: HTTP %s", u, resp.Status)
	}
	return readLimited(resp.Body, p, limit)
}

func readLimited(r io.Reader, p string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformed, p, limit)
	}
	return b, nil
}

// partialOrFull fetches a partial resource, falling back to the full one
// (the tlog-tiles rule: a partial tile may be gone once the full one exists).
func partialOrFull(ctx context.Context, s source, path func(p uint8) string, p uint8, limit int64) ([]byte, error) {
	b, err := s.get(ctx, path(p), limit)
	if p > 0 && errors.Is(err, fs.ErrNotExist) {
		b, err = s.get(ctx, path(0), limit)
	}
	return b, err
}

func readCheckpoint(ctx context.Context, s source) ([]byte, error) {
	return s.get(ctx, layout.CheckpointPath, maxCheckpointSize)
}

func readTile(ctx context.Context, s source, level, index uint64, p uint8) ([]byte, error) {
	return partialOrFull(ctx, s, func(p uint8) string { return layout.TilePath(level, index, p) }, p, maxTileSize)
}

func readBundle(ctx context.Context, s source, index uint64, p uint8) ([]byte, error) {
	return partialOrFull(ctx, s, func(p uint8) string { return layout.EntriesPath(index, p) }, p, maxBundleSize)
}
