package blob

import (
	"fmt"
	"strings"
)

// MaxKeyLen is the longest valid key, in bytes.
const MaxKeyLen = 512

// MaxSegmentLen is the longest valid key segment (the text between two
// slashes), in bytes. It matches NAME_MAX on common filesystems.
const MaxSegmentLen = 255

// CheckKey reports whether key is a valid object key, returning nil or an
// error wrapping ErrInvalidKey that says why.
//
// A valid key is at most MaxKeyLen bytes of one or more segments joined by
// single slashes. Each segment is 1 to MaxSegmentLen bytes of ASCII letters,
// digits, '.', '_' and '-', and starts with a letter or a digit. So a key is
// never empty or absolute, has no empty, "." or ".." segments, no
// backslashes, control or non-ASCII characters, and no segment that starts
// with a dot (backends keep their own temporary files under such names) or
// a dash (which a command line could take for a flag). Keys are
// case-sensitive; the local backend on a case-insensitive filesystem cannot
// hold two keys that differ only in case.
func CheckKey(key string) error {
	if key == "" {
		return invalidKey(key, "empty key")
	}
	if len(key) > MaxKeyLen {
		return invalidKey(key, fmt.Sprintf("longer than %d bytes", MaxKeyLen))
	}
	if key[0] == '/' {
		return invalidKey(key, "absolute key")
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := checkSegment(seg); err != nil {
			return invalidKey(key, err.Error())
		}
	}
	return nil
}

// CheckPrefix reports whether prefix is a valid List prefix, returning nil or
// an error wrapping ErrInvalidKey. The empty prefix is valid; any other
// prefix is valid when it is a valid key, or a valid key followed by one
// slash. Every key that starts with a valid prefix passes CheckPrefix too,
// and no valid key starts with an invalid non-empty prefix.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := CheckKey(strings.TrimSuffix(prefix, "/")); err != nil {
		return fmt.Errorf("prefix: %w", err)
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("empty segment")
	case seg == "." || seg == "..":
		return fmt.Errorf("%q segment", seg)
	case len(seg) > MaxSegmentLen:
		return fmt.Errorf("segment longer than %d bytes", MaxSegmentLen)
	case !isAlnum(seg[0]):
		return fmt.Errorf("segment does not start with a letter or digit")
	}
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// invalidKey wraps ErrInvalidKey with the reason and a quoted, shortened
// copy of the key, so that an error message stays short and printable
// whatever the caller passed.
func invalidKey(key, reason string) error {
	const show = 64
	if len(key) > show {
		key = key[:show] + "..."
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, reason)
}
