package dataset

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

const benchSize = 256 << 20 // plaintext per Seal/Open operation

// BenchmarkRawAESGCM is the baseline: stdlib AES-256-GCM over 1 MiB buffers.
func BenchmarkRawAESGCM(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	buf := make([]byte, 1<<20, 1<<20+16)
	nonce := make([]byte, 12)
	ct := aead.Seal(nil, nonce, buf, nil)
	b.Run("Seal", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		dst := make([]byte, 0, len(ct))
		for b.Loop() {
			aead.Seal(dst[:0], nonce, buf, nil)
		}
	})
	b.Run("Open", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		dst := make([]byte, 0, len(buf))
		for b.Loop() {
			if _, err := aead.Open(dst[:0], nonce, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func benchWorkers() []int {
	if n := runtime.GOMAXPROCS(0); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

func BenchmarkSeal(b *testing.B) {
	key := testKey(1)
	for _, w := range benchWorkers() {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				if err := Seal(context.Background(), io.Discard, &zeroReader{n: benchSize}, key, testHeader(0), Options{Workers: w}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// zeroReader is an endless source that costs nothing, so the benchmark
// measures sealing and not the generator.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.n)]
	z.n -= int64(len(p))
	return len(p), nil
}

func BenchmarkOpen(b *testing.B) {
	key := testKey(1)
	var sealed bytes.Buffer
	if err := Seal(context.Background(), &sealed, &zeroReader{n: benchSize}, key, testHeader(0), Options{}); err != nil {
		b.Fatal(err)
	}
	for _, w := range benchWorkers() {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				if _, err := Open(context.Background(), io.Discard, bytes.NewReader(sealed.Bytes()), key, Options{Workers: w}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenAt is OpenFile's path for files of known size: every worker
// reads and authenticates its own chunks from an io.ReaderAt, with no serial
// copy through one reader goroutine.
func BenchmarkOpenAt(b *testing.B) {
	key := testKey(1)
	dir := b.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, make([]byte, benchSize), 0o600); err != nil {
		b.Fatal(err)
	}
	sealedPath := filepath.Join(dir, "sealed")
	if _, err := SealFile(context.Background(), sealedPath, plain, key, testHeader(0), Options{}); err != nil {
		b.Fatal(err)
	}
	sealed, err := os.ReadFile(sealedPath)
	if err != nil {
		b.Fatal(err)
	}
	for _, w := range benchWorkers() {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) {
			b.SetBytes(benchSize)
			for b.Loop() {
				if _, err := openAt(context.Background(), io.Discard, bytes.NewReader(sealed), int64(len(sealed)), key, Options{Workers: w}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
