package dataset

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// SealFile seals the file at srcPath into dstPath. The sealed file appears
// at dstPath only when sealing succeeded; the header records the plaintext
// size, so any truncation of the sealed file is reported as ErrTruncated.
func SealFile(ctx context.Context, dstPath, srcPath string, key Key, h Header, opts Options) (*Header, error) {
	src, err := os.Open(srcPath)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", srcPath)
	}
	var out *Header
	err = writeAtomic(dstPath, 0o644, func(f *os.File) error {
		out, err = seal(ctx, f, src, key, h, st.Size(), opts)
		return err
	})
	return out, err
}

// OpenFile opens the sealed dataset at srcPath into dstPath (mode 0600). The
// plaintext is written to a temporary file in dstPath's directory that is
// renamed to dstPath only after the final chunk authenticated; on any error
// no output file remains.
func OpenFile(ctx context.Context, dstPath, srcPath string, key Key, opts Options) (*Header, error) {
	src, err := os.Open(srcPath)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	var h *Header
	err = writeAtomic(dstPath, 0o600, func(f *os.File) error {
		h, err = Open(ctx, f, src, key, opts)
		return err
	})
	return h, err
}

// writeAtomic writes a temporary file next to path with fill and renames it
// to path only when fill, sync and close succeeded.
func writeAtomic(path string, mode os.FileMode, fill func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
