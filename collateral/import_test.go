package collateral

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bundle writes a valid two-entry bundle and returns its directory.
func bundle(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	b := NewDir(src)
	if err := b.Put(tcbURL, intelHeader(), []byte("tcb")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(arkURL, nil, []byte("ark")); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestImport(t *testing.T) {
	src := bundle(t)
	writeFile(t, filepath.Join(src, ".DS_Store"), "junk")
	writeFile(t, filepath.Join(src, ".git", "config"), "junk")
	dst := NewDir(t.TempDir())
	n, err := Import(t.Context(), dst, src)
	if err != nil || n != 2 {
		t.Fatalf("Import = %d, %v; want 2", n, err)
	}
	h, body, err := dst.Get(t.Context(), tcbURL)
	if err != nil || string(body) != "tcb" || h.Get("TCB-Info-Issuer-Chain") == "" {
		t.Errorf("imported tcb: %v, %q, %v", h, body, err)
	}
	if _, body, err := dst.Get(t.Context(), arkURL); err != nil || string(body) != "ark" {
		t.Errorf("imported ark: %q, %v", body, err)
	}
}

func TestImportRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, src string)
		want  string
	}{
		{"symlink to file outside", func(t *testing.T, src string) {
			target := filepath.Join(t.TempDir(), "secret")
			writeFile(t, target, "secret")
			symlink(t, target, filepath.Join(src, "kdsintf.amd.com", "vcek", "v1", "Genoa", "crl"))
		}, "symbolic link"},
		{"symlink to directory", func(t *testing.T, src string) {
			symlink(t, t.TempDir(), filepath.Join(src, "kdsintf.amd.com", "vlek"))
		}, "symbolic link"},
		{"oversized", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "kdsintf.amd.com", "vcek", "v1", "Genoa", "crl"), strings.Repeat("x", maxBodySize+1))
		}, "larger than"},
		{"dot-dot name", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "kdsintf.amd.com", "%2E%2E", "x"), "x")
		}, "not a canonical"},
		{"escaped slash", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "kdsintf.amd.com", "a%2F..%2F..%2Fetc"), "x")
		}, "not a canonical"},
		{"unescaped odd byte", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "kdsintf.amd.com", "a b"), "x")
		}, "not a canonical"},
		{"file at top", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "README"), "x")
		}, "not under a host"},
		{"header without body", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "kdsintf.amd.com", "vcek", "v1", "Genoa", "crl.header.json"), "{}")
		}, "without a body"},
		{"bad header file", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "kdsintf.amd.com", "vcek", "v1", "Milan", "cert_chain.header.json"), "[")
		}, "bad header file"},
		{"parent directory given", func(t *testing.T, src string) {
			writeFile(t, filepath.Join(src, "bundle", "kdsintf.amd.com", "x"), "x")
		}, "bundle's top directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := bundle(t)
			tt.setup(t, src)
			dstRoot := t.TempDir()
			n, err := Import(t.Context(), NewDir(dstRoot), src)
			if !errors.Is(err, ErrInvalidBundle) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import = %d, %v; want ErrInvalidBundle mentioning %q", n, err, tt.want)
			}
			if ents, _ := os.ReadDir(dstRoot); n != 0 || len(ents) != 0 {
				t.Errorf("refused import copied %d entries: %v", n, ents)
			}
		})
	}
}

func TestImportMissingDir(t *testing.T) {
	_, err := Import(t.Context(), NewDir(t.TempDir()), filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Import of missing dir = %v", err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks unsupported: %v", err)
	}
}
