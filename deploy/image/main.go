// Command image writes kura's container image as an OCI image layout,
// without a container engine:
//
//	go generate ./console    # the web console's in-browser checks
//	go build -o kura ./cmd/kura
//	go run ./deploy/image -kura ./kura -o kura-image
//
// kura links DuckDB through cgo, so the binary is dynamically linked
// against glibc and libstdc++. The image is built FROM scratch and carries
// exactly the shared libraries `ldd` names for the binary, copied from the
// build host at the paths ldd reports, so the image runs what was tested on
// the host. It also holds a non-root user (kura, 65532:65532), /data
// (a declared volume owned by that user), /tmp, the host's CA bundle, and
// `kura serve` as its entrypoint. Every file's time is the Unix epoch, so
// the same binary and libraries give the same image digest.
//
// Push the layout with any OCI tool, for example
// `crane push kura-image registry.example/kura:TAG` or
// `skopeo copy oci:kura-image docker://registry.example/kura:TAG`.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Where things are in the image.
const (
	binPath = "/usr/local/bin/kura"
	dataDir = "/data"
	uid     = 65532
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	kura := flag.String("kura", "", "the kura binary to put in the image (required)")
	out := flag.String("o", "kura-image", "directory to write the OCI image layout to (must not exist)")
	caFile := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to install as /etc/ssl/certs/ca-certificates.crt (empty: none)")
	flag.Parse()
	if *kura == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: image -kura BINARY [-o DIR] [-ca-bundle FILE]")
		os.Exit(2)
	}
	digest, err := build(ctx, *kura, *caFile, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s (%s)\n", *out, digest)
}

// build writes the image for the binary at kura to a new OCI layout at out
// and returns the image's digest.
func build(ctx context.Context, kura, caFile, out string) (v1.Hash, error) {
	if _, err := os.Stat(out); err == nil {
		return v1.Hash{}, fmt.Errorf("%s exists; remove it or choose another -o", out)
	}
	files, err := sharedLibraries(ctx, kura)
	if err != nil {
		return v1.Hash{}, err
	}
	files[binPath] = kura
	if caFile != "" {
		files["/etc/ssl/certs/ca-certificates.crt"] = caFile
	}
	layerTar, err := rootfs(files)
	if err != nil {
		return v1.Hash{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layer: %w", err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cfg.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint:   []string{binPath},
		Cmd:          []string{"serve", "--addr", "0.0.0.0:8443", "--data", dataDir},
		Env:          []string{"PATH=/usr/local/bin", "KURA_DATA=" + dataDir, "HOME=" + dataDir},
		WorkingDir:   dataDir,
		Volumes:      map[string]struct{}{dataDir: {}},
		ExposedPorts: map[string]struct{}{"8443/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":  "kura",
			"org.opencontainers.image.source": "https://github.com/kura-cc/kura",
		},
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return v1.Hash{}, fmt.Errorf("config: %w", err)
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		return v1.Hash{}, fmt.Errorf("layout: %w", err)
	}
	return img.Digest()
}

// lddLine matches the lines of ldd's output that name a file:
// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
// "/lib64/ld-linux-x86-64.so.2 (0x...)".
var lddLine = regexp.MustCompile(`^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// sharedLibraries returns the files the dynamic loader needs to run bin,
// keyed by their path in the image (the path ldd reports): the loader
// itself and every library. A statically linked binary needs none.
func sharedLibraries(ctx context.Context, bin string) (map[string]string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ldd", bin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if strings.Contains(stdout.String()+stderr.String(), "not a dynamic executable") {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	files := map[string]string{}
	for line := range strings.Lines(stdout.String()) {
		line = strings.TrimRight(line, "\n")
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: %s", bin, strings.TrimSpace(line))
		}
		if m := lddLine.FindStringSubmatch(line); m != nil {
			files[m[1]] = m[1]
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("ldd %s: no libraries in %q", bin, stdout.String())
	}
	return files, nil
}

// rootfs returns the image's one layer as a tar: the directories, the
// user database and the files (image path → host path; a host symlink is
// stored as the file it points to).
func rootfs(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	var addDir func(string, int64, int) error
	addDir = func(dir string, mode int64, owner int) error {
		if dir == "/" || dirs[dir] {
			return nil
		}
		if err := addDir(path.Dir(dir), 0o755, 0); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/",
			Mode: mode, Uid: owner, Gid: owner, ModTime: epoch, Format: tar.FormatPAX})
	}
	addFile := func(name string, mode int64, data []byte) error {
		if err := addDir(path.Dir(name), 0o755, 0); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(name, "/"),
			Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := addDir(dataDir, 0o700, uid); err != nil {
		return nil, err
	}
	if err := addDir("/tmp", 0o1777, 0); err != nil {
		return nil, err
	}
	etc := []struct{ name, text string }{
		{"/etc/passwd", fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nkura:x:%d:%d:kura:%s:/sbin/nologin\n", uid, uid, dataDir)},
		{"/etc/group", fmt.Sprintf("root:x:0:\nkura:x:%d:\n", uid)},
		{"/etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n"},
	}
	for _, f := range etc {
		if err := addFile(f.name, 0o644, []byte(f.text)); err != nil {
			return nil, err
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	for _, name := range names {
		data, err := os.ReadFile(files[name])
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(files[name])
		if err != nil {
			return nil, err
		}
		mode := int64(0o644)
		if fi.Mode()&0o111 != 0 {
			mode = 0o755
		}
		if err := addFile(filepath.ToSlash(name), mode, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}
