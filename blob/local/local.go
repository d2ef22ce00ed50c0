// Package local is blob's directory backend: each object is a file under
// one directory, at the path its key names ("datasets/7f3c/data.kura" is
// the file datasets/7f3c/data.kura).
//
// A Put streams into a temporary file in the object's directory, fsyncs it,
// renames it over the object's name and fsyncs the directory, so a crash or
// a failed Put never leaves a partial object under a key: the key holds the
// old object or the complete new one. Temporary files are named
// ".kura-tmp-*"; keys cannot start a segment with a dot, so they never show
// up as objects, and a crash can leave one behind only as an orphan that an
// operator may delete. Delete removes directories it leaves empty, so the
// names of deleted objects do not linger in the tree.
//
// All file access goes through an os.Root opened on the directory, so
// neither a key nor a symbolic link planted in the directory can reach a
// file outside it. Files are created 0600 and directories 0700.
//
// Because a key's segments are directories, the local backend cannot hold
// both "a" and "a/b" (AWS S3 can; versitygw's POSIX backend cannot either);
// the second Put fails with ErrConflict.
package local

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/blob/internal/blobio"
	"github.com/kura-cc/kura/internal/fault"
)

// Config configures a local Store.
type Config struct {
	// Dir is the directory that holds the objects. New creates it (0700)
	// when it does not exist. Required.
	Dir string
	// Logger receives warnings about best-effort cleanup that failed
	// (removing a temporary file, syncing a directory). Nil discards them.
	Logger *slog.Logger
}

// ErrConflict is returned (wrapped) by Put when the key cannot be stored
// because a segment of it is an existing object ("a" when putting "a/b"),
// or the key itself is a prefix of existing objects ("a" when "a/b" exists).
var ErrConflict = fault.New(blob.ErrBlob, fault.Conflict, "blob/local: key conflicts with an existing object or prefix")

// tmpPrefix starts the name of every temporary file. CheckKey refuses
// segments that start with a dot, so no key names one.
const tmpPrefix = ".kura-tmp-"

// copyBufSize is the buffer Put and Get copy through.
const copyBufSize = 1 << 20

// Store is a blob.Store over a local directory. It is safe for concurrent
// use. Close it when done.
type Store struct {
	root *os.Root
	log  *slog.Logger
}

var _ blob.Store = (*Store)(nil)

// New opens (and if needed creates) the directory cfg.Dir as a Store.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("blob/local: Config.Dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("blob/local: %w", err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("blob/local: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{root: root, log: log.With("blob_dir", cfg.Dir)}, nil
}

// Close releases the directory. The Store must not be used afterwards.
func (s *Store) Close() error {
	return s.root.Close()
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("blob/local: put %q: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("invalid size %d", size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if fi, err := s.root.Lstat(key); err == nil && fi.IsDir() {
		return fmt.Errorf("%w: %q is a prefix of existing objects", ErrConflict, key)
	}
	dir := path.Dir(key)
	tmp := path.Join(dir, tmpPrefix+rand.Text())

	// A concurrent Delete may remove a directory between mkdirAll and
	// OpenFile; make it again a few times before giving up.
	var f *os.File
	var err error
	for range 3 {
		if err = s.mkdirAll(dir); err != nil {
			return err
		}
		f, err = s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		f.Close()
		if err := s.root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("blob/local: removing temporary file", "file", tmp, "err", err)
		}
	}()

	src := blobio.WithContext(ctx, blobio.Exact(r, size))
	// io.CopyBuffer would hand f.ReadFrom the reader and ignore the buffer;
	// hide ReadFrom so the copy stays a plain bounded loop.
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, src, make([]byte, copyBufSize)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.root.Rename(tmp, key); err != nil {
		if isConflict(err) {
			return fmt.Errorf("%w: %q is a prefix of existing objects", ErrConflict, key)
		}
		return err
	}
	committed = true
	s.syncDir(dir)
	return nil
}

// mkdirAll creates dir and its missing parents, syncing the directory that
// receives each new entry so the object's path survives a crash.
func (s *Store) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	fi, err := s.root.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil || errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%w: %q or one of its parents is an object", ErrConflict, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	parent := path.Dir(dir)
	if err := s.mkdirAll(parent); err != nil {
		return err
	}
	if err := s.root.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Created concurrently, or an object appeared: look again.
			if fi, err := s.root.Stat(dir); err == nil && fi.IsDir() {
				return nil
			}
			return fmt.Errorf("%w: %q is an object", ErrConflict, dir)
		}
		return err
	}
	s.syncDir(parent)
	return nil
}

func (s *Store) syncDir(dir string) {
	d, err := s.root.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		s.log.Warn("blob/local: syncing directory", "dir", dir, "err", err)
	}
}

func isConflict(err error) bool {
	return errors.Is(err, syscall.EISDIR) || errors.Is(err, syscall.ENOTEMPTY) ||
		errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTDIR)
}

// notFound reports whether err means that no object is stored at a path:
// it does not exist, or one of its parents is a file.
func notFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Get implements blob.Store. Reads from the returned file fail once ctx is
// done.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("blob/local: get %q: %w", key, err)
	}
	return rc, nil
}

func (s *Store) get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := blob.CheckKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.root.Open(key)
	if notFound(err) {
		return nil, blob.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, blob.ErrNotFound
	}
	return &reader{Reader: blobio.WithContext(ctx, f), Closer: f}, nil
}

type reader struct {
	io.Reader
	io.Closer
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	info, err := s.stat(ctx, key)
	if err != nil {
		return blob.Info{}, fmt.Errorf("blob/local: stat %q: %w", key, err)
	}
	return info, nil
}

func (s *Store) stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.CheckKey(key); err != nil {
		return blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	fi, err := s.root.Stat(key)
	if notFound(err) {
		return blob.Info{}, blob.ErrNotFound
	}
	if err != nil {
		return blob.Info{}, err
	}
	if !fi.Mode().IsRegular() {
		return blob.Info{}, blob.ErrNotFound
	}
	return blob.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements blob.Store. It also removes the directories on the
// key's path that it leaves empty.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.delete(ctx, key); err != nil {
		return fmt.Errorf("blob/local: delete %q: %w", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	if err := blob.CheckKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := s.root.Lstat(key)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return nil // a prefix of other keys, not an object
	}
	if err := s.root.Remove(key); err != nil {
		if notFound(err) {
			return nil
		}
		return err
	}
	// Remove now-empty parents, stopping at the first that is not empty
	// (or was just reused by a concurrent Put).
	dir := path.Dir(key)
	for dir != "." && s.root.Remove(dir) == nil {
		dir = path.Dir(dir)
	}
	s.syncDir(dir)
	return nil
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	infos, err := s.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("blob/local: list %q: %w", prefix, err)
	}
	return infos, nil
}

func (s *Store) list(ctx context.Context, prefix string) ([]blob.Info, error) {
	if err := blob.CheckPrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Walk from the deepest directory the prefix names in full.
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	var infos []blob.Info
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && notFound(err) {
				return fs.SkipAll // nothing stored under the prefix
			}
			if notFound(err) {
				return nil // removed while we walked
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p != "." && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil // a temporary file
		}
		if d.IsDir() {
			if p != "." && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := d.Info()
		if notFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		infos = append(infos, blob.Info{Key: p, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(infos, func(a, b blob.Info) int { return strings.Compare(a.Key, b.Key) })
	return infos, nil
}
