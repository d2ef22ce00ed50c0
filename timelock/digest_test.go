package timelock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kura-cc/kura/party"
)

func TestDigestWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, total := range []int{0, 1, digestBufSize - 1, digestBufSize, digestBufSize + 1, digestBufs*digestBufSize + 12345, 3 << 20} {
		data := make([]byte, total)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		var out bytes.Buffer
		d := newDigestWriter(&out)
		for p := data; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(3*digestBufSize/2))
			if w, err := d.Write(p[:n]); w != n || err != nil {
				t.Fatalf("%d bytes: Write = %d, %v", total, w, err)
			}
			p = p[n:]
		}
		if err := d.Close(); err != nil {
			t.Fatalf("%d bytes: Close: %v", total, err)
		}
		sum, n := d.Sum()
		want := sha256.Sum256(data)
		if !bytes.Equal(out.Bytes(), data) || !bytes.Equal(sum, want[:]) || n != int64(total) {
			t.Fatalf("%d bytes: output, hash or count differ (%d)", total, n)
		}
		if err := d.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := d.Write([]byte("x")); err == nil {
			t.Error("Write after Close succeeded")
		}
	}
}

// failingWriter accepts limit bytes, then fails.
type failingWriter struct {
	limit int
	err   error
	short bool
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= f.limit {
		f.limit -= len(p)
		return len(p), nil
	}
	if f.short {
		n := f.limit
		f.limit = 0
		return n, nil
	}
	return 0, f.err
}

func TestDigestWriterErrors(t *testing.T) {
	boom := errors.New("disk full")
	for _, tc := range []struct {
		name string
		dst  *failingWriter
		want error
	}{
		{"error", &failingWriter{limit: digestBufSize, err: boom}, boom},
		{"short write", &failingWriter{limit: digestBufSize + 7, short: true}, io.ErrShortWrite},
		{"first write", &failingWriter{err: boom}, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDigestWriter(tc.dst)
			var err error
			chunk := make([]byte, 10000)
			for i := 0; i < 1000 && err == nil; i++ {
				_, err = d.Write(chunk)
			}
			if cerr := d.Close(); !errors.Is(cerr, tc.want) {
				t.Errorf("Close: %v, want %v", cerr, tc.want)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("Write: %v, want %v", err, tc.want)
			}
		})
	}
}

// TestSealWriteError checks that Seal reports its output failing, in both
// formats, and returns no registration.
func TestSealWriteError(t *testing.T) {
	f := newFixture(t)
	alice := identity(t, "alice")
	boom := errors.New("disk full")
	for _, recipients := range [][]*party.Card{nil, {alice.Card()}} {
		dst := &failingWriter{limit: 3 * digestBufSize, err: boom}
		reg, err := Seal(context.Background(), dst, bytes.NewReader(make([]byte, 2<<20)), SealOptions{
			Until: f.clk.Now().Add(time.Second), Chain: f.chain, Recipients: recipients, AllowInsecure: true, Now: f.clk.Now,
		})
		if !errors.Is(err, boom) || reg != nil {
			t.Errorf("%d recipients: Seal = %v, %v; want %v", len(recipients), reg, err, boom)
		}
	}
}
