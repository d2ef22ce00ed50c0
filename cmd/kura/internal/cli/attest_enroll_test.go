package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tpm/tpmtest"
	"github.com/kura-cc/kura/internal/swtpm"
	"github.com/kura-cc/kura/verifier"
)

// provisionTPM starts swtpm and gives it an EK certificate from m in NV
// index 0x01c00002, as its manufacturer would; it returns the socket and
// the certificate.
func provisionTPM(t *testing.T, m *tpmtest.Manufacturer) (string, []byte) {
	t.Helper()
	sock := swtpm.Socket(t)
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial swtpm: %v", err)
		}
	}
	defer conn.Close()
	cert, err := m.Provision(transport.FromReadWriter(conn))
	if err != nil {
		t.Fatal(err)
	}
	return sock, cert
}

// TestAttestTPMEnroll runs enrolment as a user would: kura verifier serve
// --tpm-ek-ca trusts a test TPM manufacturer's root; kura attest
// tpm-enroll reads the EK certificate the manufacturer stored in the
// swtpm's NV, activates the verifier's credential and writes the AK
// certificate; kura attest evidence --tpm-ak-cert ships it, and the
// verifier affirms the quote by that certificate, without pinning the key.
// kura attest verify trusts the same evidence given the verifier's AK CA
// (GET /v1/attestation/tpm/ak-ca). Refused: another TPM's EK certificate,
// a TPM without one, and an AK certificate for another key.
func TestAttestTPMEnroll(t *testing.T) {
	for _, p := range []string{"/sys/kernel/security/tpm0/binary_bios_measurements", "/sys/kernel/security/ima/ascii_runtime_measurements"} {
		if f, err := os.Open(p); err == nil {
			f.Close()
			t.Skipf("%s is readable: kura would send this machine's log with swtpm's quote", p)
		}
	}
	ctx := context.Background()
	dir := t.TempDir()
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	sock, ekCert := provisionTPM(t, m)
	root, inter := filepath.Join(dir, "mfr-root.pem"), filepath.Join(dir, "mfr-intermediate.pem")
	for path, data := range map[string][]byte{root: tpmtest.PEM(m.Root), inter: tpmtest.PEM(m.Intermediate)} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tlsCert, tlsKey := selfSigned(t, dir)
	data := filepath.Join(dir, "data")
	addr := serveInBackground(t, "verifier", "serve", "--data", data, "--addr", "127.0.0.1:0", "--tls-cert", tlsCert, "--tls-key", tlsKey, "--tpm-ek-ca", root)
	url := "https://" + addr

	akCert := filepath.Join(dir, "ak-cert.pem")
	code, out := run(ctx, "attest", "tpm-enroll", "--verifier", url, "--ca", tlsCert, "--tpm-device", sock, "--ek-chain", inter, "-o", akCert, "--json")
	if code != ExitOK {
		t.Fatalf("attest tpm-enroll: exit %d\n%s", code, out)
	}
	var rep tpmEnrollReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if rep.Certificate != akCert || !strings.HasPrefix(rep.Issuer, "CN=kura TPM AK CA") || rep.NotAfter.Sub(rep.NotBefore) < 364*24*time.Hour {
		t.Errorf("report %+v", rep)
	}
	if fi, err := os.Stat(filepath.Join(data, "tpm-ak-ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the AK CA key: %v, mode %v", err, fi.Mode())
	}

	pool := x509.NewCertPool()
	pemData, _ := os.ReadFile(tlsCert)
	pool.AppendCertsFromPEM(pemData)
	vc := &verifier.Client{BaseURL: url, HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
	n, err := vc.Nonce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bundlePath := filepath.Join(dir, "bundle.json")
	if code, out := run(ctx, "attest", "evidence", "--tee", "tpm", "--tpm-device", sock, "--tpm-ak-cert", akCert, "--nonce", hex.EncodeToString(n.Nonce), "-o", bundlePath); code != ExitOK {
		t.Fatalf("attest evidence: exit %d\n%s", code, out)
	}
	raw, err := os.ReadFile(bundlePath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := attestation.ParseBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	res, err := vc.Verify(ctx, b)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	vt := res.Report.Claims["vtpm"].(map[string]any)
	ac := vt["ak_certificate"].(map[string]any)
	tpmInfo := ac["tpm"].(map[string]any)
	if res.Status != "affirming" || vt["ak_trust"] != "certificate" || ac["issuer"] != rep.Issuer || tpmInfo["manufacturer"] != "id:53575450" || tpmInfo["model"] != "swtpm" || ac["subject_key_id"] != rep.EKSHA256 {
		t.Errorf("status %s, vtpm.ak_trust %v, ak_certificate %v", res.Status, vt["ak_trust"], ac)
	}

	// A relying party pins the verifier's AK CA and verifies offline.
	caPEM, err := vc.AKCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ak-ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = run(ctx, "attest", "verify", "--evidence", bundlePath, "--tpm-ak-ca", caFile, "--nonce", hex.EncodeToString(n.Nonce))
	if code != ExitOK || !strings.Contains(out, "passed   attestation key certificate") {
		t.Errorf("attest verify with the AK CA: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, "attest", "verify", "--evidence", bundlePath, "--nonce", hex.EncodeToString(n.Nonce)); code != ExitBadEvidence {
		t.Errorf("attest verify without the AK CA: exit %d\n%s", code, out)
	}

	// Another TPM: its NV holds no EK certificate; given this one's, kura
	// refuses before asking the verifier; its AK is not the certificate's.
	otherSock := swtpm.Socket(t)
	if code, out := run(ctx, "attest", "tpm-enroll", "--verifier", url, "--ca", tlsCert, "--tpm-device", otherSock, "-o", filepath.Join(dir, "x.pem")); code != ExitFailure || !strings.Contains(out, "no EK certificate at NV index 0x01c00002") {
		t.Errorf("a TPM without an EK certificate: exit %d\n%s", code, out)
	}
	ekFile := filepath.Join(dir, "ek.der")
	if err := os.WriteFile(ekFile, ekCert, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := run(ctx, "attest", "tpm-enroll", "--verifier", url, "--ca", tlsCert, "--tpm-device", otherSock, "--ek-cert", ekFile, "--ek-chain", inter); code != ExitBadEvidence || !strings.Contains(out, "does not certify this TPM's RSA endorsement key") {
		t.Errorf("another TPM's EK certificate: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, "attest", "evidence", "--tee", "tpm", "--tpm-device", otherSock, "--tpm-ak-cert", akCert, "--nonce", "00112233445566778899aabbccddeeff"); code != ExitUsage || !strings.Contains(out, "certifies another key") {
		t.Errorf("--tpm-ak-cert of another TPM's key: exit %d\n%s", code, out)
	}
	if code, out := run(ctx, "attest", "evidence", "--tee", "sim", "--tpm-ak-cert", akCert, "--nonce", "00112233445566778899aabbccddeeff"); code != ExitUsage {
		t.Errorf("--tpm-ak-cert with --tee sim: exit %d\n%s", code, out)
	}
	// A verifier without --tpm-ek-ca certifies nothing.
	plain := serveInBackground(t, "verifier", "serve", "--data", filepath.Join(dir, "data2"), "--addr", "127.0.0.1:0", "--tls-cert", tlsCert, "--tls-key", tlsKey)
	if code, out := run(ctx, "attest", "tpm-enroll", "--verifier", "https://"+plain, "--ca", tlsCert, "--tpm-device", sock, "--ek-chain", inter); code != ExitFailure || !strings.Contains(out, "--tpm-ek-ca") {
		t.Errorf("a verifier without a privacy CA: exit %d\n%s", code, out)
	}
}
