// Package s3 is blob's S3-compatible backend: objects live in one bucket,
// under an optional key prefix, and are read and written with minio-go.
//
// Put streams: an object of known size up to Config.PartSize goes up in one
// PUT; anything larger, or of unknown size, goes up as a multipart upload of
// PartSize parts, so memory use stays near one part whatever the object's
// size. A failed or cancelled upload is aborted, so the key keeps its old
// object (S3 only makes an object visible when its upload completes). A
// process that dies mid-upload can leave an incomplete multipart upload
// behind: it is invisible to readers and List, but takes space until the
// bucket's lifecycle rule (AbortIncompleteMultipartUpload) removes it.
//
// The credentials come from Config only; this package reads no environment
// variables or files, and Config prints its secret key as REDACTED.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/blob/internal/blobio"
)

// Part sizes: S3 refuses parts under 5 MiB (except the last) and over 5 GiB,
// and uploads of more than 10,000 parts.
const (
	// DefaultPartSize is the PartSize used when Config.PartSize is zero.
	DefaultPartSize = 64 << 20
	minPartSize     = 5 << 20
	maxPartSize     = 5 << 30
	maxParts        = 10000
	// maxObjectKey is S3's limit on an object name, in bytes.
	maxObjectKey = 1024
)

// Config configures an S3 Store.
type Config struct {
	// Endpoint is the server's host and optional port, without a scheme
	// ("s3.eu-west-1.amazonaws.com", "127.0.0.1:7070"). Required.
	Endpoint string
	// Bucket is the bucket holding the objects. It must exist. Required.
	Bucket string
	// Region is the bucket's region. Empty lets the client discover it.
	Region string
	// AccessKey is the access key ID. Required.
	AccessKey string
	// SecretKey is the secret access key. Required. It is never logged.
	SecretKey string
	// UseTLS selects HTTPS; without it requests and payloads travel in
	// plain HTTP (still signed, and the payloads are ciphertext).
	UseTLS bool
	// Prefix, when set, is prepended to every key with a slash between
	// ("kura" stores key "a/b" as object "kura/a/b"), so several stores can
	// share a bucket. It must be a valid key (see blob.CheckKey); a
	// trailing slash is ignored.
	Prefix string
	// PartSize is the part size of multipart uploads, in bytes, and the
	// largest object sent in a single PUT. Zero means DefaultPartSize. It
	// bounds the memory a Put uses and, for a Put of unknown size, the
	// object size: at most 10,000 parts (625 GiB at the default).
	PartSize int64
}

// LogValue implements slog.LogValuer, leaving out the secret key.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.String("region", c.Region),
		slog.String("access_key", c.AccessKey),
		slog.String("secret_key", "REDACTED"),
		slog.Bool("tls", c.UseTLS),
		slog.String("prefix", c.Prefix),
		slog.Int64("part_size", c.PartSize),
	)
}

// String formats the configuration without the secret key, so that
// printing a Config with %v or %+v does not leak it.
func (c Config) String() string {
	return fmt.Sprintf("{Endpoint:%s Bucket:%s Region:%s AccessKey:%s SecretKey:REDACTED UseTLS:%t Prefix:%s PartSize:%d}",
		c.Endpoint, c.Bucket, c.Region, c.AccessKey, c.UseTLS, c.Prefix, c.PartSize)
}

// GoString is String for %#v.
func (c Config) GoString() string { return "s3.Config" + c.String() }

// Store is a blob.Store over an S3 bucket. It is safe for concurrent use.
type Store struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or Config.Prefix plus "/"
	partSize int64
}

var _ blob.Store = (*Store)(nil)

// New checks cfg, connects to the server and checks that the bucket exists
// and the credentials can see it.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := check(&cfg); err != nil {
		return nil, fmt.Errorf("blob/s3: %w", err)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.UseTLS,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("blob/s3: %w", err)
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("blob/s3: checking bucket %q at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		return nil, fmt.Errorf("blob/s3: bucket %q does not exist at %s", cfg.Bucket, cfg.Endpoint)
	}
	s := &Store{client: client, bucket: cfg.Bucket, partSize: cfg.PartSize}
	if cfg.Prefix != "" {
		s.prefix = cfg.Prefix + "/"
	}
	return s, nil
}

func check(cfg *Config) error {
	switch {
	case cfg.Endpoint == "":
		return errors.New("Config.Endpoint is required")
	case strings.Contains(cfg.Endpoint, "://"):
		return fmt.Errorf("Config.Endpoint %q has a scheme; give host[:port] and set UseTLS for https", cfg.Endpoint)
	case cfg.Bucket == "":
		return errors.New("Config.Bucket is required")
	case cfg.AccessKey == "" || cfg.SecretKey == "":
		return errors.New("Config.AccessKey and Config.SecretKey are required")
	}
	cfg.Prefix = strings.TrimSuffix(cfg.Prefix, "/")
	if cfg.Prefix != "" {
		if err := blob.CheckKey(cfg.Prefix); err != nil {
			return fmt.Errorf("Config.Prefix: %w", err)
		}
		if len(cfg.Prefix)+1+blob.MaxKeyLen > maxObjectKey {
			return fmt.Errorf("Config.Prefix is longer than %d bytes", maxObjectKey-1-blob.MaxKeyLen)
		}
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize || cfg.PartSize > maxPartSize {
		return fmt.Errorf("Config.PartSize %d is outside [%d, %d]", cfg.PartSize, minPartSize, maxPartSize)
	}
	return nil
}

// object returns the object name for key, or an error wrapping
// blob.ErrInvalidKey.
func (s *Store) object(key string) (string, error) {
	if err := blob.CheckKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// mapErr translates a minio error: a missing object becomes
// blob.ErrNotFound, and a done context its own error.
func mapErr(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey, "NotFound":
		return blob.ErrNotFound
	}
	return err
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := s.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("blob/s3: put %q: %w", key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, key string, r io.Reader, size int64) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if size < -1 {
		return fmt.Errorf("invalid size %d", size)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	// Known sizes too large for PartSize parts get minio's own part size.
	if size <= s.partSize*maxParts {
		opts.PartSize = uint64(s.partSize)
	}
	// The Recorder hides any io.ReaderAt, which keeps minio on its
	// sequential path (one part buffer), and keeps the source's error.
	src := &blobio.Recorder{R: blobio.WithContext(ctx, blobio.Exact(r, size))}
	if size == 0 {
		// minio does not read the body of an empty object; check here that
		// the reader is empty too.
		if _, err := src.Read(make([]byte, 1)); err != io.EOF {
			return err
		}
	}
	_, err = s.client.PutObject(ctx, s.bucket, name, src, size, opts)
	switch {
	case err != nil && src.Err != nil:
		return src.Err
	case err != nil:
		return mapErr(ctx, err)
	case src.Err != nil:
		// The upload completed although the source failed. Never leave an
		// object that is not what the caller gave.
		if rerr := s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, name, minio.RemoveObjectOptions{}); rerr != nil {
			return fmt.Errorf("%w; removing the stored object also failed: %w", src.Err, rerr)
		}
		return src.Err
	}
	return nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := s.get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("blob/s3: get %q: %w", key, err)
	}
	return rc, nil
}

func (s *Store) get(ctx context.Context, key string) (io.ReadCloser, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, mapErr(ctx, err)
	}
	// GetObject is lazy; Stat sends the GET, so a missing object is
	// reported here rather than on the first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		return nil, mapErr(ctx, err)
	}
	return &reader{ctx: ctx, obj: obj}, nil
}

// reader reports a done context as its error, whatever minio says.
type reader struct {
	ctx context.Context
	obj *minio.Object
}

func (r *reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.obj.Read(p)
	if err != nil && err != io.EOF {
		err = mapErr(r.ctx, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.obj.Close() }

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	info, err := s.stat(ctx, key)
	if err != nil {
		return blob.Info{}, fmt.Errorf("blob/s3: stat %q: %w", key, err)
	}
	return info, nil
}

func (s *Store) stat(ctx context.Context, key string) (blob.Info, error) {
	name, err := s.object(key)
	if err != nil {
		return blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return blob.Info{}, mapErr(ctx, err)
	}
	return blob.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.delete(ctx, key); err != nil {
		return fmt.Errorf("blob/s3: delete %q: %w", key, err)
	}
	return nil
}

func (s *Store) delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err = s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{})
	if err := mapErr(ctx, err); err != nil && !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	return nil
}

// List implements blob.Store. Objects in the bucket whose names are not
// valid keys under the prefix (written by other tools) are left out.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	infos, err := s.list(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("blob/s3: list %q: %w", prefix, err)
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio's listing goroutine if we return early
	var infos []blob.Info
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix:    s.prefix + prefix,
		Recursive: true,
	}) {
		if oi.Err != nil {
			return nil, mapErr(ctx, oi.Err)
		}
		key, ok := strings.CutPrefix(oi.Key, s.prefix)
		if !ok || blob.CheckKey(key) != nil {
			continue
		}
		infos = append(infos, blob.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(infos, func(a, b blob.Info) int { return strings.Compare(a.Key, b.Key) })
	return infos, nil
}
