package collateral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// Dir is a directory of collateral keyed by URL, laid out as the package
// documentation describes. It serves both as the on-disk cache and as an
// offline bundle. A Dir is safe for concurrent use; Put replaces files
// atomically, so readers see the old or the new body, never a torn one.
type Dir struct {
	root string
}

// NewDir returns the Dir rooted at root. The directory need not exist until
// the first Put, which creates it.
func NewDir(root string) *Dir {
	return &Dir{root: root}
}

// Root returns the directory the Dir was created with.
func (d *Dir) Root() string { return d.root }

// Get returns the kept headers and body stored for url. When there is none,
// or url cannot name a file, the error wraps
// attestation.ErrCollateralUnavailable.
func (d *Dir) Get(ctx context.Context, url string) (http.Header, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	h, body, _, err := d.read(url)
	if isAbsent(err) {
		return nil, nil, fmt.Errorf("%w: %s: not in %s", attestation.ErrCollateralUnavailable, url, d.root)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: in %s: %w", attestation.ErrCollateralUnavailable, url, d.root, err)
	}
	return h, body, nil
}

// Put stores body and the headers worth keeping (Content-Type and the
// *-Issuer-Chain headers) for url, creating directories as needed. Each
// file is written to a temporary file and renamed into place.
func (d *Dir) Put(url string, header http.Header, body []byte) error {
	rel, err := relPath(url)
	if err != nil {
		return fmt.Errorf("collateral: storing %s: %w", url, err)
	}
	if len(body) > maxBodySize {
		return fmt.Errorf("collateral: storing %s: body of %d bytes exceeds %d", url, len(body), maxBodySize)
	}
	p := filepath.Join(d.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("collateral: storing %s: %w", url, err)
	}
	// Headers first: a reader racing a Put may pair the new headers with the
	// old body, which for a given URL carry the same issuer chain.
	if kept := keepHeaders(header); kept != nil {
		hj, err := json.MarshalIndent(kept, "", "  ")
		if err != nil {
			return fmt.Errorf("collateral: storing %s: %w", url, err)
		}
		if err := writeAtomic(p+headerSuffix, append(hj, '\n')); err != nil {
			return fmt.Errorf("collateral: storing %s: %w", url, err)
		}
	} else if err := os.Remove(p + headerSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("collateral: storing %s: %w", url, err)
	}
	if err := writeAtomic(p, body); err != nil {
		return fmt.Errorf("collateral: storing %s: %w", url, err)
	}
	return nil
}

// read returns what is stored for url and the body's modification time.
// Absence is reported as an error wrapping fs.ErrNotExist.
func (d *Dir) read(url string) (http.Header, []byte, time.Time, error) {
	rel, err := relPath(url)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("URL cannot be stored: %w", err)
	}
	p := filepath.Join(d.root, filepath.FromSlash(rel))
	body, info, err := readFileLimited(p)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	hj, _, err := readFileLimited(p + headerSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, body, info.ModTime(), nil
	}
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	h, err := parseHeader(hj)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("%s%s: %w", rel, headerSuffix, err)
	}
	return h, body, info.ModTime(), nil
}

// isAbsent reports whether err from read means there is no entry.
func isAbsent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// readFileLimited reads a regular file of at most maxBodySize bytes.
func readFileLimited(p string) ([]byte, fs.FileInfo, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readLimited(f)
}

func readLimited(f fs.File) ([]byte, fs.FileInfo, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", info.Name())
	}
	if info.Size() > maxBodySize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", info.Name(), maxBodySize)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxBodySize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > maxBodySize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", info.Name(), maxBodySize)
	}
	return b, info, nil
}

// writeAtomic writes b to p through a temporary file in the same directory.
// Temporary names start with '.', which no collateral name does.
func writeAtomic(p string, b []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// keepHeaders returns the headers worth storing with a body, under their
// canonical names, or nil when there are none.
func keepHeaders(h http.Header) http.Header {
	var kept http.Header
	for k, v := range h {
		ck := http.CanonicalHeaderKey(k)
		if len(v) == 0 || !(ck == "Content-Type" || strings.HasSuffix(ck, "-Issuer-Chain")) {
			continue
		}
		if kept == nil {
			kept = make(http.Header)
		}
		kept[ck] = append(kept[ck], v...)
	}
	return kept
}

// parseHeader parses a .header.json file and keeps only the headers worth
// keeping.
func parseHeader(b []byte) (http.Header, error) {
	var h map[string][]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("bad header file: %w", err)
	}
	return keepHeaders(h), nil
}
