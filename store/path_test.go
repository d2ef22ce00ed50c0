package store_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/kura-cc/kura/store"
)

var pathSeeds = []string{
	"repo/type/tag", "default/key/1", "a/b/c", "A-z_0.9/x/y", "my.repo/tls-cert/v1_2",
	strings.Repeat("r", 128) + "/t/x", strings.Repeat("r", 129) + "/t/x",
	"", "/", "//", "a/b", "a/b/c/d", "/a/b", "a/b/", "a//c", "../b/c", "a/./c", "a/b/..", "a/b/...",
	"a/b/c ", "a/b/c\x00", "a/b/ç", "a/b/c\n", "a\\b/c/d", "a/b/%2e%2e", "a/b/c?x=1", "a/b/c#f",
	"repo/type/\xff", "repo/type/" + strings.Repeat("t", 200),
}

// reference is an independent statement of the path rule.
var reference = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}/[A-Za-z0-9._-]{1,128}/[A-Za-z0-9._-]{1,128}$`)

func referenceValid(p string) bool {
	if !reference.MatchString(p) {
		return false
	}
	for _, s := range strings.Split(p, "/") {
		if s == "." || s == ".." {
			return false
		}
	}
	return true
}

func TestValidatePath(t *testing.T) {
	for _, p := range pathSeeds {
		err := store.ValidatePath(p)
		if want := referenceValid(p); (err == nil) != want {
			t.Errorf("ValidatePath(%q) = %v; want valid=%v", p, err, want)
		}
		if err != nil && !errors.Is(err, store.ErrInvalidPath) {
			t.Errorf("ValidatePath(%q) = %v; not ErrInvalidPath", p, err)
		}
	}
}

func TestValidateScope(t *testing.T) {
	for scope, ok := range map[string]bool{
		"default": true, "repo/r": true, "repo/my.repo-1": true, "resource/r/t/x": true,
		"": false, "Default": false, "default/": false, "repo/": false, "repo/a/b": false, "repo/..": false,
		"resource/": false, "resource/a/b": false, "resource/a/b/c/d": false, "policy/x": false, "repo/a\x00": false,
	} {
		err := store.ValidateScope(scope)
		if (err == nil) != ok {
			t.Errorf("ValidateScope(%q) = %v; want ok=%v", scope, err, ok)
		}
		if err != nil && !errors.Is(err, store.ErrInvalidScope) {
			t.Errorf("ValidateScope(%q) = %v; not ErrInvalidScope", scope, err)
		}
	}
}

func FuzzValidatePath(f *testing.F) {
	if len(pathSeeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, p := range pathSeeds {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := store.ValidatePath(p)
		if want := referenceValid(p); (err == nil) != want {
			t.Fatalf("ValidatePath(%q) = %v; reference says valid=%v", p, err, want)
		}
		if err != nil {
			if !errors.Is(err, store.ErrInvalidPath) {
				t.Fatalf("ValidatePath(%q) = %v; not ErrInvalidPath", p, err)
			}
			if len(err.Error()) > 512 {
				t.Fatalf("error message of %d bytes", len(err.Error()))
			}
			return
		}
		// A valid path is safe as a file name component sequence and as a
		// resource scope.
		if strings.ContainsAny(p, "\\\x00 ") || strings.HasPrefix(p, "/") {
			t.Fatalf("valid path %q holds unsafe characters", p)
		}
		if err := store.ValidateScope("resource/" + p); err != nil {
			t.Fatalf("ValidateScope(resource/%s) = %v", p, err)
		}
	})
}
