package collateral

import (
	"path/filepath"
	"strings"
	"testing"
)

// vendorURLs are real collateral URLs, the fuzz seeds and the cases the
// layout in the package documentation was designed for.
var vendorURLs = []string{
	"https://kdsintf.amd.com/vcek/v1/Milan/cert_chain",
	"https://kdsintf.amd.com/vcek/v1/Genoa/crl",
	"https://kdsintf.amd.com/vlek/v1/Turin/cert_chain",
	"https://kdsintf.amd.com/vcek/v1/Milan/0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115",
	"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000",
	"https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity",
	"https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
	"https://certificates.trustedservices.intel.com/IntelSGXRootCA.der",
}

func TestRelPath(t *testing.T) {
	tests := []struct {
		url, want string
	}{
		{"https://kdsintf.amd.com/vcek/v1/Milan/cert_chain", "kdsintf.amd.com/vcek/v1/Milan/cert_chain"},
		{"https://KDSINTF.amd.com/vcek/v1/Milan/cert_chain", "kdsintf.amd.com/vcek/v1/Milan/cert_chain"},
		{"http://kdsintf.amd.com/vcek/v1/Milan/cert_chain", "kdsintf.amd.com/vcek/v1/Milan/cert_chain"},
		{"https://kdsintf.amd.com/vcek/v1/Milan/abcd?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115",
			"kdsintf.amd.com/vcek/v1/Milan/abcd@blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"},
		{"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000",
			"api.trustedservices.intel.com/tdx/certification/v4/tcb@fmspc=50806f000000"},
		{"https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
			"api.trustedservices.intel.com/sgx/certification/v4/pckcrl@ca=platform&encoding=der"},
		{"https://certificates.trustedservices.intel.com/IntelSGXRootCA.der", "certificates.trustedservices.intel.com/IntelSGXRootCA.der"},
		{"https://127.0.0.1:8443/a", "127.0.0.1%3A8443/a"},
		{"https://h.example/.well-known/x", "h.example/%2Ewell-known/x"},
		{"https://h.example/a%20b/c@d?q=%2F x", "h.example/a%20b/c%40d@q=%252F%20x"},
		{"https://h.example/a%2Fb", "h.example/a/b"}, // the path is decoded before splitting
	}
	for _, tt := range tests {
		got, err := relPath(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("relPath(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
			continue
		}
		back, err := urlFromRel(got)
		if err != nil {
			t.Errorf("urlFromRel(%q): %v", got, err)
			continue
		}
		if again, _ := relPath(back); again != got {
			t.Errorf("urlFromRel(%q) = %q, which maps to %q", got, back, again)
		}
	}
}

func TestRelPathRefuses(t *testing.T) {
	for _, u := range []string{
		"",
		"/etc/passwd",
		"file:///etc/passwd",
		"ftp://h.example/a",
		"https://h.example",
		"https://h.example/",
		"https://h.example/a/",
		"https://h.example/a//b",
		"https://h.example/../etc/passwd",
		"https://h.example/a/../../etc/passwd",
		"https://h.example/a/%2E%2E/%2E%2E/etc",
		"https://h.example/a%2F..%2F..%2Fetc",
		"https://h.example/./a",
		"https://user:pw@h.example/a",
		"https://h.example/a#frag",
		"https:opaque",
		"https://h.example/x.header.json",
		"https://h.example/" + strings.Repeat("a", maxNameLen+1),
	} {
		if got, err := relPath(u); err == nil {
			t.Errorf("relPath(%q) = %q, want error", u, got)
		}
	}
}

func TestURLFromRelRefuses(t *testing.T) {
	for _, rel := range []string{
		"kdsintf.amd.com",            // no path
		"h.example/a b",              // unescaped space
		"h.example/%2e",              // lower-case hex
		"h.example/%2E%2E",           // decodes to ".."
		"h.example/a%2Fb",            // escaped slash
		"h.example/a%zz",             // bad escape
		"h.example/a%4",              // truncated escape
		"h.example/a@q@r",            // '@' in query must be escaped
		"h.example/a@",               // empty query
		"h.example/a.header.json",    // header file name
		"h.example/%2Ewell-known/a/", // trailing slash
	} {
		if got, err := urlFromRel(rel); err == nil {
			t.Errorf("urlFromRel(%q) = %q, want error", rel, got)
		}
	}
}

// FuzzRelPath checks that no URL maps outside the directory, that every
// path maps back to a URL with the same path, and that nothing panics.
func FuzzRelPath(f *testing.F) {
	if len(vendorURLs) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, u := range vendorURLs {
		f.Add(u)
	}
	f.Add("https://h.example/a/../../etc/passwd")
	f.Add("https://[::1]:8443/%2E%2E/x?a=%00")
	f.Fuzz(func(t *testing.T, u string) {
		rel, err := relPath(u)
		if err != nil {
			return
		}
		native := filepath.FromSlash(rel)
		if !filepath.IsLocal(native) {
			t.Fatalf("relPath(%q) = %q, not local", u, rel)
		}
		root := filepath.FromSlash("/cache")
		if p := filepath.Join(root, native); !strings.HasPrefix(p, root+string(filepath.Separator)) {
			t.Fatalf("relPath(%q) = %q escapes root: %q", u, rel, p)
		}
		parts := strings.Split(rel, "/")
		if len(parts) < 2 {
			t.Fatalf("relPath(%q) = %q has no host directory", u, rel)
		}
		for _, p := range parts {
			if p == "" || p[0] == '.' || len(p) > maxNameLen || strings.ContainsAny(p, "\\:\x00") {
				t.Fatalf("relPath(%q) = %q has bad component %q", u, rel, p)
			}
		}
		back, err := urlFromRel(rel)
		if err != nil {
			t.Fatalf("urlFromRel(relPath(%q) = %q): %v", u, rel, err)
		}
		if again, err := relPath(back); err != nil || again != rel {
			t.Fatalf("relPath(%q) = %q, %v; want %q", back, again, err, rel)
		}
	})
}
