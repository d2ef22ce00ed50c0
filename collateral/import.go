package collateral

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/kura-cc/kura/internal/fault"
)

// ErrInvalidBundle means a directory given to Import is not a collateral
// bundle: it holds a symbolic link, a special file, a file over 1 MiB, a
// name that the layout in the package documentation does not produce, or a
// header file without its body.
var ErrInvalidBundle = fault.New(nil, fault.Invalid, "invalid collateral bundle")

// Import copies the offline bundle in srcDir, laid out as the package
// documentation describes, into dst and returns the number of entries
// copied. It checks every name, file type, size and header file before
// copying anything; a bundle that fails the checks yields an error wrapping
// ErrInvalidBundle and nothing is copied. Files and directories whose names start with '.' are skipped.
// Entries already in dst are replaced.
func Import(ctx context.Context, dst *Dir, srcDir string) (n int, err error) {
	root, err := os.OpenRoot(srcDir)
	if err != nil {
		return 0, fmt.Errorf("collateral: import: %w", err)
	}
	defer root.Close()

	type entry struct {
		url    string
		rel    string
		info   fs.FileInfo
		header http.Header
	}
	var (
		entries []*entry
		byRel   = make(map[string]*entry)
		headers = make(map[string]fs.FileInfo)
	)
	invalid := func(p, format string, args ...any) error {
		return fmt.Errorf("collateral: import %s: %w: %s: %s", srcDir, ErrInvalidBundle, p, fmt.Sprintf(format, args...))
	}
	err = fs.WalkDir(root.FS(), ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(de.Name(), ".") {
			if de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch t := de.Type(); {
		case t&fs.ModeSymlink != 0:
			return invalid(p, "is a symbolic link")
		case t.IsDir():
			if !strings.Contains(p, "/") && !strings.ContainsAny(p, ".%") {
				return invalid(p, "is not a host name; give the bundle's top directory, the one holding kdsintf.amd.com or api.trustedservices.intel.com")
			}
			return nil
		case !t.IsRegular():
			return invalid(p, "is not a regular file")
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		if info.Size() > maxBodySize {
			return invalid(p, "is larger than %d bytes", maxBodySize)
		}
		if strings.HasSuffix(p, headerSuffix) {
			headers[p] = info
			return nil
		}
		u, err := urlFromRel(p)
		if err != nil {
			return invalid(p, "%v", err)
		}
		e := &entry{url: u, rel: p, info: info}
		entries = append(entries, e)
		byRel[p] = e
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrInvalidBundle) {
			return 0, err
		}
		return 0, fmt.Errorf("collateral: import %s: %w", srcDir, err)
	}
	for p, info := range headers {
		e := byRel[strings.TrimSuffix(p, headerSuffix)]
		if e == nil {
			return 0, invalid(p, "header file without a body")
		}
		b, err := readSame(root, p, info)
		if err != nil {
			return 0, invalid(p, "%v", err)
		}
		if e.header, err = parseHeader(b); err != nil {
			return 0, invalid(p, "%v", err)
		}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("collateral: import %s: %w", srcDir, err)
		}
		body, err := readSame(root, e.rel, e.info)
		if err != nil {
			return n, invalid(e.rel, "%v", err)
		}
		if err := dst.Put(e.url, e.header, body); err != nil {
			return n, fmt.Errorf("collateral: import %s: %w", srcDir, err)
		}
		n++
	}
	return n, nil
}

// readSame reads p under root, refusing it if it is no longer the file the
// walk saw (replaced by a link, say) or is too large.
func readSame(root *os.Root, p string, want fs.FileInfo) ([]byte, error) {
	f, err := root.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, info, err := readLimited(f)
	if err != nil {
		return nil, err
	}
	if !os.SameFile(info, want) {
		return nil, errors.New("changed while importing")
	}
	return b, nil
}
