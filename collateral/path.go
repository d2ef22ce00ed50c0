package collateral

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

const (
	// maxBodySize caps every collateral body and header file, on disk and
	// on the wire. The largest real collateral (Intel PCK CRLs, AMD cert
	// chains) is a few KiB.
	maxBodySize = 1 << 20
	// maxNameLen caps one escaped path component so that it, with
	// headerSuffix, fits the usual 255-byte file name limit.
	maxNameLen = 240
	// headerSuffix names the sibling file holding a body's kept headers.
	headerSuffix = ".header.json"
)

// relPath maps a collateral URL to its slash-separated path relative to a
// Dir's root, following the rule in the package documentation. The result
// never starts with '/', never contains an empty, "." or ".." component, and
// no component starts with '.'.
func relPath(rawURL string) (string, error) {
	if strings.ContainsRune(rawURL, '#') {
		return "", errors.New("URL has a fragment")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("URL scheme %q is not https", u.Scheme)
	case u.Opaque != "" || u.User != nil:
		return "", errors.New("URL has an opaque part or user info")
	case u.Host == "":
		return "", errors.New("URL has no host")
	case u.Path == "" || u.Path == "/":
		return "", errors.New("URL has no path")
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	parts := make([]string, 0, 1+len(segs))
	parts = append(parts, escapeName(strings.ToLower(u.Host), false))
	for i, s := range segs {
		switch s {
		case "":
			return "", errors.New("URL path has an empty segment")
		case ".", "..":
			return "", errors.New("URL path has a dot segment")
		}
		name := escapeName(s, false)
		if i == len(segs)-1 {
			if u.RawQuery != "" {
				name += "@" + escapeName(u.RawQuery, true)
			}
			if strings.HasSuffix(name, headerSuffix) {
				return "", fmt.Errorf("URL path ends in %q", headerSuffix)
			}
		}
		parts = append(parts, name)
	}
	for _, p := range parts {
		if len(p) > maxNameLen {
			return "", fmt.Errorf("URL component longer than %d bytes once escaped", maxNameLen)
		}
	}
	return strings.Join(parts, "/"), nil
}

// urlFromRel is the inverse of relPath for the paths it produces: it
// returns the https URL whose relPath is rel, or an error when rel is not
// such a path.
func urlFromRel(rel string) (string, error) {
	parts := strings.Split(rel, "/")
	if len(parts) < 2 {
		return "", errors.New("not under a host directory")
	}
	host, err := unescapeName(parts[0])
	if err != nil {
		return "", err
	}
	last, query, _ := strings.Cut(parts[len(parts)-1], "@")
	segs := append(parts[1:len(parts)-1:len(parts)-1], last)
	for i, s := range segs {
		if segs[i], err = unescapeName(s); err != nil {
			return "", err
		}
	}
	if query, err = unescapeName(query); err != nil {
		return "", err
	}
	u := url.URL{Scheme: "https", Host: host, Path: "/" + strings.Join(segs, "/"), RawQuery: query}
	s := u.String()
	// Only canonical names are accepted: mapping the URL back must give rel
	// exactly. This rejects unescaped odd bytes, lower-case hex, escaped
	// slashes and anything relPath refuses.
	if back, err := relPath(s); err != nil || back != rel {
		return "", errors.New("not a canonical collateral path")
	}
	return s, nil
}

// escapeName escapes s as one path component; query also keeps '=' and '&'.
func escapeName(s string, query bool) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keepByte(c, query) && (i > 0 || c != '.') {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

func keepByte(c byte, query bool) bool {
	switch {
	case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return true
	case c == '-' || c == '_' || c == '.':
		return true
	case query && (c == '=' || c == '&'):
		return true
	}
	return false
}

// unescapeName decodes %XX escapes (upper-case hex only).
func unescapeName(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated escape")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errors.New("bad escape")
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
