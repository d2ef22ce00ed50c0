package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// TestImage builds kura, writes its image, unpacks the image's layers into
// a directory and runs `kura version` and `kura demo` from that filesystem
// alone: the binary through the loader and libraries the image carries,
// none of the host's.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kura and a 60 MB image")
	}
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("no ldd on this host")
	}
	ctx := t.Context()
	dir := t.TempDir()
	bin := filepath.Join(dir, "kura")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/kura-cc/kura/cmd/kura").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "image")
	digest, err := build(ctx, bin, "", out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := build(ctx, bin, "", out); err == nil {
		t.Error("build over an existing layout succeeded")
	}
	again, err := build(ctx, bin, "", filepath.Join(dir, "image2"))
	if err != nil {
		t.Fatal(err)
	}
	if again != digest {
		t.Errorf("two builds of one binary: digests %s and %s", digest, again)
	}

	idx, err := layout.ImageIndexFromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", c.User)
	}
	if got := append(slices.Clone(c.Entrypoint), c.Cmd...); len(got) < 2 || got[0] != binPath || got[1] != "serve" {
		t.Errorf("entrypoint %q cmd %q, want %s serve ...", c.Entrypoint, c.Cmd, binPath)
	}
	if _, ok := c.Volumes[dataDir]; !ok {
		t.Errorf("volumes %v, want %s", c.Volumes, dataDir)
	}

	root := filepath.Join(dir, "root")
	headers, err := unpack(mutate.Extract(img), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		path      string
		uid, mode int64
	}{{binPath, 0, 0o755}, {dataDir, uid, 0o700}, {"/tmp", 0, 0o1777}, {"/etc/passwd", 0, 0o644}} {
		h, ok := headers[want.path]
		if !ok {
			t.Errorf("image lacks %s", want.path)
		} else if int64(h.Uid) != want.uid || h.Mode != want.mode {
			t.Errorf("%s: uid %d mode %04o, want uid %d mode %04o", want.path, h.Uid, h.Mode, want.uid, want.mode)
		}
	}
	f, err := elf.Open(filepath.Join(root, binPath))
	if err != nil {
		t.Fatal(err)
	}
	needed, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range needed {
		direct, _ := filepath.Glob(filepath.Join(root, "lib*", lib))
		nested, _ := filepath.Glob(filepath.Join(root, "lib*", "*", lib))
		if len(direct)+len(nested) == 0 {
			t.Errorf("kura needs %s, which the image lacks", lib)
		}
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
	if !strings.Contains(string(passwd), "kura:x:65532:65532:") {
		t.Errorf("/etc/passwd has no kura user:\n%s", passwd)
	}

	run := func(args ...string) string {
		t.Helper()
		cmd := imageCommand(ctx, root, args...)
		cmd.Dir = t.TempDir()
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		if err := cmd.Run(); err != nil {
			t.Fatalf("kura %s from the image: %v\n%s", strings.Join(args, " "), err, buf.String())
		}
		return buf.String()
	}
	if got := run("version"); !strings.HasPrefix(got, "kura ") {
		t.Errorf("kura version from the image printed %q", got)
	}
	if got := run("demo"); !strings.Contains(got, "Next:") {
		t.Errorf("kura demo from the image did not finish:\n%s", got)
	}
}

// imageCommand runs the image's kura with the image's own loader and
// libraries (or directly, if the binary is static), ignoring the host's
// loader cache and library path.
func imageCommand(ctx context.Context, root string, args ...string) *exec.Cmd {
	bin := filepath.Join(root, binPath)
	loaders, _ := filepath.Glob(filepath.Join(root, "lib*", "ld-linux*.so*"))
	env := []string{"HOME=" + os.TempDir(), "PATH=/nonexistent"}
	if len(loaders) == 0 {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		return cmd
	}
	libdirs, _ := filepath.Glob(filepath.Join(root, "lib", "*-linux-gnu"))
	full := append([]string{"--inhibit-cache", "--library-path", strings.Join(libdirs, ":"), bin}, args...)
	cmd := exec.CommandContext(ctx, loaders[0], full...)
	cmd.Env = env
	return cmd
}

// unpack writes a flattened image filesystem (a tar) under root and
// returns its headers by absolute path.
func unpack(rc io.ReadCloser, root string) (map[string]*tar.Header, error) {
	defer rc.Close()
	headers := map[string]*tar.Header{}
	err := unpackTo(tar.NewReader(rc), root, headers)
	return headers, err
}

func unpackTo(tr *tar.Reader, root string, headers map[string]*tar.Header) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		headers["/"+strings.TrimSuffix(h.Name, "/")] = h
		name := filepath.Join(root, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(name, root+string(filepath.Separator)) {
			return errors.New("layer path outside the root: " + h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_EXCL, os.FileMode(h.Mode).Perm())
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return errors.New("unexpected entry in layer: " + h.Name)
		}
	}
}

func TestSharedLibrariesErrors(t *testing.T) {
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("no ldd on this host")
	}
	if _, err := sharedLibraries(t.Context(), filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("ldd of a missing file succeeded")
	}
	if _, err := build(t.Context(), filepath.Join(t.TempDir(), "missing"), "", filepath.Join(t.TempDir(), "out")); err == nil {
		t.Error("an image of a missing binary was built")
	}
}

func TestLDDLine(t *testing.T) {
	for line, want := range map[string]string{
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0000000000)": "/lib/x86_64-linux-gnu/libc.so.6",
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f0000000000)":                  "/lib64/ld-linux-x86-64.so.2",
		"\tlinux-vdso.so.1 (0x00007ffd00000000)":                              "",
		"\tlibfoo.so => not found":                                            "",
	} {
		got := ""
		if m := lddLine.FindStringSubmatch(line); m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%q: got %q, want %q", line, got, want)
		}
	}
}
