package store

import (
	"fmt"
	"strings"
)

// maxSegment is the longest repository, type or tag.
const maxSegment = 128

// ValidatePath reports whether path is a KBS resource path
// "repository/type/tag": three segments of 1..128 characters from
// [A-Za-z0-9._-], none of them "." or "..". It returns an error wrapping
// ErrInvalidPath otherwise.
func ValidatePath(path string) error {
	if len(path) > 3*maxSegment+2 {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidPath, 3*maxSegment+2)
	}
	segs := strings.Split(path, "/")
	if len(segs) != 3 {
		return fmt.Errorf("%w: %q is not repository/type/tag", ErrInvalidPath, truncate(path, 64))
	}
	for _, s := range segs {
		if err := validateSegment(s); err != nil {
			return fmt.Errorf("%w: %q: %s", ErrInvalidPath, truncate(path, 64), err)
		}
	}
	return nil
}

// ValidateScope reports whether scope is a policy scope: "default",
// "repo/<repository>" or "resource/<path>", where repository is a path
// segment and path a resource path. It returns an error wrapping
// ErrInvalidScope otherwise.
func ValidateScope(scope string) error {
	switch {
	case scope == DefaultScope:
		return nil
	case strings.HasPrefix(scope, "repo/"):
		if err := validateSegment(strings.TrimPrefix(scope, "repo/")); err != nil {
			return fmt.Errorf("%w: %q: repository %s", ErrInvalidScope, truncate(scope, 64), err)
		}
		return nil
	case strings.HasPrefix(scope, "resource/"):
		if err := ValidatePath(strings.TrimPrefix(scope, "resource/")); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidScope, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %q is not default, repo/<repository> or resource/<path>", ErrInvalidScope, truncate(scope, 64))
}

func validateSegment(s string) error {
	if len(s) == 0 || len(s) > maxSegment {
		return fmt.Errorf("segment length %d outside 1..%d", len(s), maxSegment)
	}
	if s == "." || s == ".." {
		return fmt.Errorf("segment %q not allowed", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("byte %#02x at %d not in [A-Za-z0-9._-]", c, i)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
