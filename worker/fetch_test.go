package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/result"
)

// TestFetchURL: a sealed file at an http(s) location is read into memory,
// no more than the manifest's sealed size; failures name the URL without
// its query, where a presigned URL keeps its credentials.
func TestFetchURL(t *testing.T) {
	sealed := bytes.Repeat([]byte("sealed"), 1000)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.kura":
			w.Write(sealed)
		case "/big.kura":
			w.Write(append(sealed, 'x'))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ds := func(path string) *collab.Dataset {
		d := &collab.Dataset{ID: "passengers", Location: srv.URL + path + "?X-Amz-Signature=s3cret"}
		d.Descriptor.SealedSize = int64(len(sealed))
		return d
	}
	src, n, closer, err := fetchURL(context.Background(), srv.Client(), ds("/ok.kura"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(io.NewSectionReader(src, 0, n))
	closer.Close()
	if !bytes.Equal(got, sealed) {
		t.Errorf("fetched %d bytes, want the %d served", len(got), len(sealed))
	}
	for path, want := range map[string]string{"/big.kura": "more than the manifest's 6000 bytes", "/missing.kura": "404 Not Found"} {
		_, _, _, err := fetchURL(context.Background(), srv.Client(), ds(path))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want %q without the query", path, err, want)
		}
		if path == "/big.kura" && !errors.Is(err, ErrInputMismatch) {
			t.Errorf("an oversized file: %v, want ErrInputMismatch", err)
		}
	}
	// A TLS failure does not show the query either.
	_, _, _, err = fetchURL(context.Background(), http.DefaultClient, ds("/ok.kura"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("untrusted certificate: %v", err)
	}
}

// TestFetchAll: every sealed file is fetched and checked, in parallel,
// before any key; the error is the first dataset's in the order of reads,
// whichever finished first, and every file fetched is handed back to be
// closed.
func TestFetchAll(t *testing.T) {
	files := map[string][]byte{"a": []byte("sealed a"), "b": []byte("sealed b"), "c": []byte("sealed c")}
	digest := func(b []byte) string { return result.DigestHex(b) }
	m := &collab.Manifest{}
	for _, id := range []string{"a", "b", "c"} {
		d := collab.Dataset{ID: id}
		d.Descriptor.SealedSHA256 = digest(files[id])
		m.Datasets = append(m.Datasets, d)
	}
	var mu sync.Mutex
	closed := map[string]bool{}
	r := &run{manifest: m, cfg: Config{Fetch: func(_ context.Context, ds *collab.Dataset) (io.ReaderAt, int64, io.Closer, error) {
		b, ok := files[ds.ID]
		if !ok {
			return nil, 0, nil, errors.New("unreachable")
		}
		return bytes.NewReader(b), int64(len(b)), closerFunc(func() error {
			mu.Lock()
			defer mu.Unlock()
			closed[ds.ID] = true
			return nil
		}), nil
	}}}
	reads := []string{"a", "b", "c"}
	got, err := r.fetchAll(context.Background(), reads)
	if err != nil || len(got) != 3 || got[2].size != int64(len(files["c"])) {
		t.Fatalf("fetchAll: %v, %+v", err, got)
	}

	files["c"] = []byte("swapped c")
	files["b"] = []byte("swapped b")
	got, err = r.fetchAll(context.Background(), reads)
	if !errors.Is(err, ErrInputMismatch) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("two swapped files: %v, want b's mismatch", err)
	}
	for _, f := range got {
		if f.closer != nil {
			f.closer.Close()
		}
	}
	if !closed["a"] || !closed["b"] || !closed["c"] {
		t.Errorf("files handed back to close: %v", closed)
	}

	delete(files, "a")
	if _, err := r.fetchAll(context.Background(), reads); err == nil || !strings.Contains(err.Error(), `dataset "a": fetch sealed file: unreachable`) {
		t.Errorf("unreachable file: %v", err)
	}
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
