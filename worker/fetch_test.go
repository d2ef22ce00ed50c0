package worker

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kura-cc/kura/collab"
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
