package main

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kura-cc/kura/cmd/kura/internal/cli"
	"github.com/kura-cc/kura/cmd/kura/internal/demo"
)

// TestWorkerWritesNoPlaintext runs `kura worker run` as its own process,
// with its working, temporary and home directories fresh, on the two
// owners' sealed datasets: it writes nothing but the result bundle and the
// receipt, and neither they nor anything else it wrote holds a byte run of
// the plaintext datasets.
func TestWorkerWritesNoPlaintext(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two key brokers and a worker process")
	}
	ctx := context.Background()
	c, err := demo.NewCleanRoom(ctx, demo.CleanRoomConfig{Dir: t.TempDir(), Rows: 2000, Version: cli.Version, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Approve(demo.Airline, demo.Carrier); err != nil {
		t.Fatal(err)
	}
	file, err := c.Collab.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	collabPath := filepath.Join(t.TempDir(), "story.collab.json")
	if err := os.WriteFile(collabPath, file, 0o644); err != nil {
		t.Fatal(err)
	}
	work, tmp, home := t.TempDir(), t.TempDir(), t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "kura")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	an := demo.Analyses()[0].ID
	cmd := exec.Command(bin, "worker", "run", collabPath, "--analysis", an, "--tee", "sim", "--dev", "-o", "result.json")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("worker run: %v\n%s", err, out)
	}

	var plain [][]byte
	for _, p := range c.Plaintext {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, data)
	}
	written := map[string]bool{}
	for _, dir := range []string{work, tmp, home} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(work, p)
			written[rel] = true
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, pt := range plain {
				for off := 0; off+64 <= len(pt); off += len(pt) / 32 {
					if bytes.Contains(data, pt[off:off+64]) {
						t.Errorf("%s holds plaintext bytes %d..%d of a dataset", p, off, off+64)
						break
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(written) != 2 || !written["result.json"] || !written["result.receipt.json"] {
		t.Errorf("the worker wrote %v, want only result.json and result.receipt.json", written)
	}
}
