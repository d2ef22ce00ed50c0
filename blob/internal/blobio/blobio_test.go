package blobio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/kura-cc/kura/blob"
)

func TestExact(t *testing.T) {
	errBoom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		r       io.Reader
		size    int64
		want    string
		wantErr error // nil means success
	}{
		{"exact", strings.NewReader("hello"), 5, "hello", nil},
		{"empty", strings.NewReader(""), 0, "", nil},
		{"unknown", strings.NewReader("hello"), -1, "hello", nil},
		{"short", strings.NewReader("hell"), 5, "hell", blob.ErrSizeMismatch},
		{"long", strings.NewReader("hello!"), 5, "", blob.ErrSizeMismatch},
		{"long from empty", strings.NewReader("x"), 0, "", blob.ErrSizeMismatch},
		{"one byte at a time", iotest.OneByteReader(strings.NewReader("hello")), 5, "hello", nil},
		{"one byte at a time, long", iotest.OneByteReader(strings.NewReader("hello!")), 5, "", blob.ErrSizeMismatch},
		{"data with EOF", iotest.DataErrReader(strings.NewReader("hello")), 5, "hello", nil},
		{"reader error", io.MultiReader(strings.NewReader("he"), iotest.ErrReader(errBoom)), 5, "he", errBoom},
		{"reader error after size", io.MultiReader(strings.NewReader("hello"), iotest.ErrReader(errBoom)), 5, "", errBoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			_, err := io.Copy(&got, Exact(tc.r, tc.size))
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("copy: %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("copy error = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && got.String() != tc.want {
				t.Errorf("read %q, want %q", got.String(), tc.want)
			}
		})
	}
}

// TestExactFailsOnLastByte checks that the surplus is reported by the Read
// that delivers the last declared byte, for consumers that stop there.
func TestExactFailsOnLastByte(t *testing.T) {
	r := Exact(strings.NewReader("hello!"), 5)
	buf := make([]byte, 5)
	n, err := r.Read(buf)
	if n != 5 || !errors.Is(err, blob.ErrSizeMismatch) {
		t.Errorf("Read = %d, %v; want 5, ErrSizeMismatch", n, err)
	}
	if _, err := r.Read(buf); !errors.Is(err, blob.ErrSizeMismatch) {
		t.Errorf("second Read error = %v, want the sticky ErrSizeMismatch", err)
	}
}

func TestWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	r := WithContext(ctx, strings.NewReader("hello"))
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 2 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	cancel()
	if _, err := r.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("Read after cancel = %v, want context.Canceled", err)
	}
}

func TestRecorder(t *testing.T) {
	errBoom := errors.New("boom")
	r := &Recorder{R: io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(errBoom))}
	if _, err := io.ReadAll(r); !errors.Is(err, errBoom) || r.Err != errBoom {
		t.Errorf("ReadAll = %v, Recorder.Err = %v; want %v for both", err, r.Err, errBoom)
	}
	r = &Recorder{R: strings.NewReader("ab")}
	if _, err := io.ReadAll(r); err != nil || r.Err != nil {
		t.Errorf("ReadAll = %v, Recorder.Err = %v; want nil for both", err, r.Err)
	}
}
