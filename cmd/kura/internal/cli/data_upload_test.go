package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestDataUpload: an owner uploads a sealed file to the server's blob
// store over TLS with its tenant key, and the printed location serves the
// same bytes; a file that is not sealed is refused before it is sent.
func TestDataUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	s := startTLSServer(t)
	csv := filepath.Join(s.dir, "visits.csv")
	os.WriteFile(csv, []byte("id,n\n1,2\n3,4\n"), 0o600)
	sealed := filepath.Join(s.dir, "visits.kura")
	if code, out := run(context.Background(), "data", "seal", csv, "-o", sealed); code != 0 {
		t.Fatalf("data seal: %d %s", code, out)
	}
	code, out := run(context.Background(), "data", "upload", sealed, "--url", s.url, "--ca", s.ca, "--admin-key", s.adminKey)
	m := regexp.MustCompile(`location: (https://\S+/v1/datasets/[0-9a-f]{64})`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("data upload: exit %d\n%s", code, out)
	}
	pem, _ := os.ReadFile(s.ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := hc.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	want, _ := os.ReadFile(sealed)
	if res.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Errorf("GET %s: %d, %d bytes, want the %d uploaded", m[1], res.StatusCode, len(got), len(want))
	}
	if code, out := run(context.Background(), "data", "upload", csv, "--url", s.url, "--ca", s.ca, "--admin-key", s.adminKey); code == 0 || !regexp.MustCompile(`not a sealed dataset`).MatchString(out) {
		t.Errorf("uploading a CSV: exit %d\n%s", code, out)
	}
}
