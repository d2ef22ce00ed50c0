package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kura-cc/kura/blob"
	"github.com/kura-cc/kura/blob/internal/blobtest"
)

// gw is the gateway every test in this package talks to, started by
// TestMain; nil in -short mode, where the tests that need it skip.
var gw *gateway

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kura-blob-s3-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	bin, cached, err := gatewayBinary(ctx, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "blob/s3 tests: building the S3 test server: %v\n", err)
		return 1
	}
	built := time.Now()
	gw, err = startGateway(ctx, bin, dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "blob/s3 tests: starting the S3 test server %s: %v\n", bin, err)
		return 1
	}
	defer gw.stop()
	if testing.Verbose() {
		how := "built"
		if cached {
			how = "cached"
		}
		fmt.Printf("versitygw on %s: %s %s in %v, ready in %v\n", gw.endpoint, how, bin, built.Sub(start).Round(time.Millisecond), time.Since(built).Round(time.Millisecond))
	}
	return m.Run()
}

var bucketSeq atomic.Int64

// newBucket creates an empty bucket for one test.
func newBucket(t *testing.T) string {
	t.Helper()
	if gw == nil {
		t.Skip("needs the versitygw S3 server, not started in -short mode")
	}
	name := fmt.Sprintf("kura-test-%d", bucketSeq.Add(1))
	if err := gw.client().MakeBucket(t.Context(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("MakeBucket(%s): %v", name, err)
	}
	return name
}

// testPartSize is S3's minimum, so the suite's multi-megabyte objects go up
// in many parts.
const testPartSize = 5 << 20

func config(bucket, prefix string) Config {
	return Config{
		Endpoint:  gw.endpoint,
		Bucket:    bucket,
		AccessKey: gw.access,
		SecretKey: gw.secret,
		Prefix:    prefix,
		PartSize:  testPartSize,
	}
}

func newStore(t *testing.T, bucket, prefix string) *Store {
	t.Helper()
	s, err := New(t.Context(), config(bucket, prefix))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return newStore(t, newBucket(t), "")
	})
}

// TestConformancePrefix runs the suite on a store that shares its bucket
// with objects outside its prefix, which it must neither list nor touch.
func TestConformancePrefix(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		bucket := newBucket(t)
		for _, name := range []string{"outside", "tenant-b/x", "tenant/ab", "tenant/a-b/x", "tenant/a/.hidden"} {
			if _, err := gw.client().PutObject(t.Context(), bucket, name, strings.NewReader("foreign"), 7, minio.PutObjectOptions{}); err != nil {
				t.Fatalf("PutObject(%s): %v", name, err)
			}
		}
		return newStore(t, bucket, "tenant/a/")
	})
}

// TestFailedUploadsAborted checks what a failed multipart upload leaves on
// the server: nothing, not even an incomplete upload.
func TestFailedUploadsAborted(t *testing.T) {
	bucket := newBucket(t)
	s := newStore(t, bucket, "")
	errBoom := errors.New("boom")
	for _, size := range []int64{-1, 30 << 20} {
		r := blobtest.FailingReader(blobtest.RandomReader(1, 12<<20), errBoom)
		if err := s.Put(t.Context(), "f/k", r, size); !errors.Is(err, errBoom) {
			t.Errorf("Put(size %d) failing after 12 MiB = %v, want the reader's error", size, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := blobtest.FailingReader(blobtest.RandomReader(1, 12<<20), errBoom)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	s.Put(ctx, "f/k", r, -1)
	for up := range gw.client().ListIncompleteUploads(t.Context(), bucket, "", true) {
		if up.Err != nil {
			t.Fatalf("ListIncompleteUploads: %v", up.Err)
		}
		t.Errorf("incomplete upload left behind: %s (%s)", up.Key, up.UploadID)
	}
	if objs := blobtest.MustList(t, s, ""); len(objs) != 0 {
		t.Errorf("objects after failed uploads: %q", blobtest.Keys(objs))
	}
}

// TestPutMemoryBounded checks that a Put of unknown size streams in parts:
// storing LargeSize bytes allocates a few part buffers, not the object.
func TestPutMemoryBounded(t *testing.T) {
	s := newStore(t, newBucket(t), "")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := s.Put(t.Context(), "mem/k", blobtest.RandomReader(9, blobtest.LargeSize), -1); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Put of %d bytes in %d-byte parts allocated %d bytes", blobtest.LargeSize, testPartSize, alloc)
	if alloc > blobtest.LargeSize/2 {
		t.Errorf("Put of %d bytes allocated %d bytes, want well under the object size", blobtest.LargeSize, alloc)
	}
}

func TestNewErrors(t *testing.T) {
	bucket := newBucket(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, "Endpoint is required"},
		{"scheme", func(c *Config) { c.Endpoint = "http://" + c.Endpoint }, "has a scheme"},
		{"no bucket", func(c *Config) { c.Bucket = "" }, "Bucket is required"},
		{"no access key", func(c *Config) { c.AccessKey = "" }, "are required"},
		{"no secret key", func(c *Config) { c.SecretKey = "" }, "are required"},
		{"bad prefix", func(c *Config) { c.Prefix = "../up" }, "invalid key"},
		{"long prefix", func(c *Config) { c.Prefix = strings.Repeat("pp/", 170) + "pp" }, "Prefix is longer"},
		{"small parts", func(c *Config) { c.PartSize = 1 << 20 }, "PartSize"},
		{"huge parts", func(c *Config) { c.PartSize = 6 << 30 }, "PartSize"},
		{"missing bucket", func(c *Config) { c.Bucket = "no-such-bucket" }, "does not exist"},
		{"wrong secret", func(c *Config) { c.SecretKey = "not-the-secret-0123456789" }, "checking bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config(bucket, "")
			tc.edit(&cfg)
			_, err := New(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), gw.secret) || strings.Contains(err.Error(), "not-the-secret") {
				t.Errorf("error %q contains the secret key", err)
			}
		})
	}
}

func TestConfigRedacted(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
	cfg := Config{Endpoint: "127.0.0.1:1", Bucket: "b", AccessKey: "AKIDEXAMPLE", SecretKey: secret}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("config", "s3", cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "s3", cfg)
	fmt.Fprintf(&buf, "%v %+v %#v %s", cfg, cfg, cfg, cfg)
	json.NewEncoder(&buf).Encode(slog.AnyValue(cfg).Resolve().Any())
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Errorf("formatted Config leaks the secret key:\n%s", out)
	}
	if !strings.Contains(out, "AKIDEXAMPLE") || !strings.Contains(out, "REDACTED") {
		t.Errorf("formatted Config lacks the access key or the REDACTED marker:\n%s", out)
	}
}

// TestListSkipsForeignObjects checks that objects whose names are not valid
// keys (written by other tools) are not listed.
func TestListSkipsForeignObjects(t *testing.T) {
	bucket := newBucket(t)
	for _, name := range []string{"ok/x", "ok/.tmp", "ok/a b", "ok/dir/", "ok/é"} {
		if _, err := gw.client().PutObject(t.Context(), bucket, name, bytes.NewReader(nil), 0, minio.PutObjectOptions{}); err != nil {
			t.Logf("PutObject(%q): %v (server refused; skipping that name)", name, err)
		}
	}
	s := newStore(t, bucket, "")
	if got := blobtest.Keys(blobtest.MustList(t, s, "")); !slices.Equal(got, []string{"ok/x"}) {
		t.Errorf("List = %q, want [ok/x]", got)
	}
}

// TestPrefixIsolation checks that two stores sharing a bucket under
// different prefixes do not see each other's objects.
func TestPrefixIsolation(t *testing.T) {
	bucket := newBucket(t)
	a, b := newStore(t, bucket, "a"), newStore(t, bucket, "b")
	blobtest.MustPut(t, a, "k", []byte("in a"))
	if _, err := b.Stat(t.Context(), "k"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("b.Stat(k) = %v, want ErrNotFound", err)
	}
	if got := blobtest.MustList(t, b, ""); len(got) != 0 {
		t.Errorf("b.List = %q, want nothing", blobtest.Keys(got))
	}
	rc, err := gw.client().GetObject(t.Context(), bucket, "a/k", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if data, err := io.ReadAll(rc); err != nil || string(data) != "in a" {
		t.Errorf("object a/k = %q, %v; want %q", data, err, "in a")
	}
}
