package collateral

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kura-cc/kura/attestation"
)

const (
	tcbURL  = "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000"
	arkURL  = "https://kdsintf.amd.com/vcek/v1/Milan/cert_chain"
	vcekURL = "https://kdsintf.amd.com/vcek/v1/Milan/abcd?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"
)

func intelHeader() http.Header {
	h := http.Header{}
	h.Set("TCB-Info-Issuer-Chain", "-----BEGIN%20CERTIFICATE-----%0AMIIC")
	h.Set("Content-Type", "application/json")
	h.Set("Request-ID", "0123")
	h.Set("Set-Cookie", "session=secret")
	return h
}

func TestDirHeadersRoundTrip(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	d := NewDir(root)
	body := []byte(`{"tcbInfo":{}}`)
	if err := d.Put(tcbURL, intelHeader(), body); err != nil {
		t.Fatal(err)
	}
	h, got, err := d.Get(ctx, tcbURL)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(body) {
		t.Errorf("body = %q, want %q", got, body)
	}
	want := http.Header{
		"Tcb-Info-Issuer-Chain": {"-----BEGIN%20CERTIFICATE-----%0AMIIC"},
		"Content-Type":          {"application/json"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("header = %v, want %v", h, want)
	}
	// The layout is the documented one.
	p := filepath.Join(root, "api.trustedservices.intel.com", "tdx", "certification", "v4", "tcb@fmspc=50806f000000")
	if b, err := os.ReadFile(p); err != nil || string(b) != string(body) {
		t.Errorf("reading %s: %q, %v", p, b, err)
	}
	if b, err := os.ReadFile(p + ".header.json"); err != nil || !strings.Contains(string(b), "Tcb-Info-Issuer-Chain") || strings.Contains(string(b), "secret") {
		t.Errorf("header file: %s, %v", b, err)
	}

	// Replacing the entry without headers removes the old header file.
	if err := d.Put(tcbURL, nil, []byte("v2")); err != nil {
		t.Fatal(err)
	}
	h, got, err = d.Get(ctx, tcbURL)
	if err != nil || h != nil || string(got) != "v2" {
		t.Errorf("after second Put: %v, %q, %v", h, got, err)
	}
	if _, err := os.Stat(p + ".header.json"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale header file: %v", err)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("files next to entry: %v", ents)
	}
}

func TestDirHeaderFileFiltered(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "kdsintf.amd.com", "vcek", "v1", "Milan", "cert_chain")
	writeFile(t, p, "chain")
	writeFile(t, p+".header.json", `{"content-type":["application/pem"],"X-Other":["x"]}`)
	h, _, err := NewDir(root).Get(t.Context(), arkURL)
	if err != nil {
		t.Fatal(err)
	}
	if want := (http.Header{"Content-Type": {"application/pem"}}); !reflect.DeepEqual(h, want) {
		t.Errorf("header = %v, want %v", h, want)
	}
	writeFile(t, p+".header.json", `not json`)
	if _, _, err := NewDir(root).Get(t.Context(), arkURL); !errors.Is(err, attestation.ErrCollateralUnavailable) {
		t.Errorf("bad header file: %v", err)
	}
}

func TestDirAbsent(t *testing.T) {
	d := NewDir(t.TempDir())
	for _, u := range []string{arkURL, "https://h.example/../../etc/passwd", "not a url"} {
		_, _, err := d.Get(t.Context(), u)
		if !errors.Is(err, attestation.ErrCollateralUnavailable) {
			t.Errorf("Get(%q) = %v, want ErrCollateralUnavailable", u, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := d.Get(ctx, arkURL); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Get = %v", err)
	}
}

func TestDirPutRefuses(t *testing.T) {
	root := t.TempDir()
	d := NewDir(filepath.Join(root, "cache"))
	if err := d.Put("https://h.example/../../evil", nil, []byte("x")); err == nil {
		t.Error("Put with dot segments succeeded")
	}
	if err := d.Put(arkURL, nil, make([]byte, maxBodySize+1)); err == nil {
		t.Error("Put of oversized body succeeded")
	}
	ents, _ := os.ReadDir(root)
	if len(ents) != 0 {
		t.Errorf("Put left %v", ents)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
