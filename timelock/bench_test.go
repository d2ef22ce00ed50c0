package timelock

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kura-cc/kura/party"
)

// zeros is an endless reader of zero bytes, so that no benchmark holds its
// input in memory (the ciphers do not care what they encrypt).
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func sizes(b *testing.B) []int64 {
	if testing.Short() {
		return []int64{1 << 10}
	}
	return []int64{1 << 10, 1 << 30}
}

// BenchmarkSealOpen measures sealing and opening with and without
// recipients, against a same-run baseline of age X25519 on the same data.
// Run the 1 GiB case once: go test ./timelock -run '^$' -bench . -benchtime 1x
func BenchmarkSealOpen(b *testing.B) {
	fx := newFixture(b)
	alice := identity(b, "alice")
	dir := b.TempDir()
	for _, size := range sizes(b) {
		name := strconv.FormatInt(size, 10)
		for _, mode := range []struct {
			name string
			to   []*party.Card
		}{{"tlock", nil}, {"kura", []*party.Card{alice.Card()}}} {
			path := filepath.Join(dir, mode.name+name)
			b.Run("seal/"+mode.name+"/"+name, func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					f, _ := os.Create(path)
					_, err := Seal(context.Background(), f, io.LimitReader(zeros{}, size), SealOptions{Until: fx.clk.Now().Add(time.Second), Chain: fx.chain, Recipients: mode.to, AllowInsecure: true, Now: fx.clk.Now})
					f.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("open/"+mode.name+"/"+name, func(b *testing.B) {
				fx.clk.Add(5 * time.Second)
				b.SetBytes(size)
				for b.Loop() {
					f, _ := os.Open(path)
					_, err := Open(context.Background(), io.Discard, f, OpenOptions{Identity: alice, Chain: fx.chain, AllowInsecure: true, Now: fx.clk.Now})
					f.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		id, _ := age.GenerateX25519Identity()
		path := filepath.Join(dir, "age"+name)
		b.Run("seal/age-x25519/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				f, _ := os.Create(path)
				w, err := age.Encrypt(f, id.Recipient())
				if err == nil {
					_, err = io.Copy(w, io.LimitReader(zeros{}, size))
				}
				if err == nil {
					err = w.Close()
				}
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("open/age-x25519/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				f, _ := os.Open(path)
				r, err := age.Decrypt(f, id)
				if err == nil {
					_, err = io.Copy(io.Discard, r)
				}
				f.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
