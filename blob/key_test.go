package blob

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

var validKeys = []string{
	"a",
	"A",
	"0",
	"datasets/7f3c9a/data.kura",
	"results/run-1/bundle.tar",
	"a/b/c/d/e/f",
	"x.y_z-w",
	"a..b",
	"a./b_",
	strings.Repeat("k", MaxSegmentLen),
	strings.Repeat("abcdefg/", MaxKeyLen/8-1) + "abcdefg",
}

var invalidKeys = []struct {
	key, why string
}{
	{"", "empty key"},
	{"/", "absolute key"},
	{"/a", "absolute key"},
	{"a/", "empty segment"},
	{"a//b", "empty segment"},
	{".", `"." segment`},
	{"..", `".." segment`},
	{"../a", `".." segment`},
	{"a/../b", `".." segment`},
	{"a/./b", `"." segment`},
	{"a/..", `".." segment`},
	{".hidden", "does not start with a letter or digit"},
	{"a/.kura-tmp-x", "does not start with a letter or digit"},
	{"-rf", "does not start with a letter or digit"},
	{"_a", "does not start with a letter or digit"},
	{`a\b`, "not allowed"},
	{`..\..\etc`, "does not start"},
	{"a b", "not allowed"},
	{"a\x00b", "not allowed"},
	{"a\nb", "not allowed"},
	{"a:b", "not allowed"},
	{"a%2e", "not allowed"},
	{"é", "does not start"},
	{"aé", "not allowed"},
	{"C:", "not allowed"},
	{strings.Repeat("k", MaxSegmentLen+1), "segment longer than"},
	{strings.Repeat("abcdefg/", MaxKeyLen/8) + "a", "longer than 512 bytes"},
}

func TestCheckKey(t *testing.T) {
	for _, k := range validKeys {
		if err := CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", k, err)
		}
		if err := CheckPrefix(k); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", k, err)
		}
	}
	for _, tc := range invalidKeys {
		err := CheckKey(tc.key)
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", tc.key, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.why) {
			t.Errorf("CheckKey(%q) = %q, want reason %q", tc.key, err, tc.why)
		}
	}
}

func TestCheckKeyErrorIsShort(t *testing.T) {
	err := CheckKey(strings.Repeat("\x00", 1<<20))
	if !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("CheckKey(1 MiB of NUL) = %v, want ErrInvalidKey", err)
	}
	if n := len(err.Error()); n > 400 {
		t.Errorf("error message is %d bytes long, want a short one", n)
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "results/run-1/", "results/r"} {
		if err := CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "//", "a//", "../", "./", "/a/", ".k", "a/.", "a b/"} {
		if err := CheckPrefix(p); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("CheckPrefix(%q) = %v, want ErrInvalidKey", p, err)
		}
	}
}

// FuzzCheckKey checks that every key CheckKey accepts is a canonical,
// local, printable path that stays inside any directory it is joined to,
// and that every refusal wraps ErrInvalidKey.
func FuzzCheckKey(f *testing.F) {
	for _, k := range validKeys {
		f.Add(k)
	}
	for _, tc := range invalidKeys {
		f.Add(tc.key)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := CheckKey(key)
		if perr := CheckPrefix(key); err == nil && perr != nil {
			t.Fatalf("CheckKey(%q) accepts but CheckPrefix refuses: %v", key, perr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("CheckKey(%q) = %v, does not wrap ErrInvalidKey", key, err)
			}
			return
		}
		if len(key) == 0 || len(key) > MaxKeyLen {
			t.Fatalf("CheckKey accepted %q of length %d", key, len(key))
		}
		if path.Clean(key) != key || filepath.Clean(key) != filepath.FromSlash(key) {
			t.Fatalf("CheckKey accepted non-canonical %q", key)
		}
		if !filepath.IsLocal(key) || path.IsAbs(key) || filepath.IsAbs(key) {
			t.Fatalf("CheckKey accepted non-local %q", key)
		}
		const root = "/srv/kura/blobs"
		if j := path.Join(root, key); !strings.HasPrefix(j, root+"/") {
			t.Fatalf("CheckKey accepted %q, which escapes %s as %s", key, root, j)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg[0] == '.' || seg[0] == '-' || len(seg) > MaxSegmentLen {
				t.Fatalf("CheckKey accepted %q with segment %q", key, seg)
			}
		}
		for i := 0; i < len(key); i++ {
			if c := key[i]; c < 0x21 || c > 0x7e || c == '\\' {
				t.Fatalf("CheckKey accepted %q with byte %#x", key, c)
			}
		}
	})
}
