package verifier_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tpm"
	"github.com/kura-cc/kura/attestation/tpm/tpmtest"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/swtpm"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// enrolFixture is a verifier whose privacy CA trusts the test
// manufacturer's root, served over HTTP, with its logs.
type enrolFixture struct {
	m      *tpmtest.Manufacturer
	ca     *x509.Certificate
	srv    *httptest.Server
	client *verifier.Client
	clock  *clock
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newEnrolFixture(t *testing.T, withCA bool) *enrolFixture {
	t.Helper()
	ctx := context.Background()
	m, err := tpmtest.NewManufacturer("Test TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	f := &enrolFixture{m: m, clock: &clock{t: time.Now()}, logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(f.logs, nil))
	cfg := tpm.Config{Logger: log}
	vcfg := verifier.Config{Now: f.clock.now, Logger: log}
	if withCA {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := tpm.NewPrivacyCACertificate(key, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if f.ca, err = x509.ParseCertificate(der); err != nil {
			t.Fatal(err)
		}
		pca, err := tpm.NewPrivacyCA(tpm.PrivacyCAConfig{EKCAs: []*x509.Certificate{m.Root}, Key: key, Certificate: f.ca, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		cfg.AKCAs = []*x509.Certificate{f.ca}
		vcfg.AKEnroller = pca
	}
	tv, err := tpm.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if vcfg.Appraiser, err = appraisal.New(ctx, appraisal.Config{}); err != nil {
		t.Fatal(err)
	}
	vcfg.TEEs = map[attestation.TEE]attestation.Verifier{attestation.TPM: tv}
	tokenKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if vcfg.Issuer, err = token.NewIssuer(token.IssuerConfig{Key: tokenKey, Build: "kura test"}); err != nil {
		t.Fatal(err)
	}
	svc, err := verifier.New(vcfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, log)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	f.client = &verifier.Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
	return f
}

// testTPM is a software TPM with an EK certificate from the fixture's
// manufacturer in NV, and an Attester on it.
type testTPM struct {
	tpm    transport.TPM
	a      *tpm.Attester
	ekCert []byte
	ak     []byte // TPMT_PUBLIC
}

func (f *enrolFixture) newTPM(t *testing.T) *testTPM {
	t.Helper()
	tt := &testTPM{tpm: swtpm.Start(t)}
	var err error
	if tt.ekCert, err = f.m.Provision(tt.tpm); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if tt.a, err = tpm.NewAttester(tpm.AttesterConfig{Transport: tt.tpm, EventLogPath: empty, IMAPath: empty}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tt.a.Close() })
	if tt.ak, err = tt.a.AttestationKeyPublic(); err != nil {
		t.Fatal(err)
	}
	return tt
}

// post posts body and returns the status and problem type.
func (f *enrolFixture) post(t *testing.T, path string, body []byte) (int, string, []byte) {
	t.Helper()
	resp, err := f.srv.Client().Post(f.srv.URL+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var p struct{ Type string }
	json.Unmarshal(data, &p)
	return resp.StatusCode, strings.TrimPrefix(p.Type, "https://kura.dev/problems/"), data
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAKEnrolment enrols a software TPM's attestation key over HTTP with
// verifier.Client.EnrollAK, then attests with it: the verifier trusts the
// quote by the certificate its privacy CA issued. The secret is in no log;
// every decision is.
func TestAKEnrolment(t *testing.T) {
	ctx := context.Background()
	f := newEnrolFixture(t, true)
	tt := f.newTPM(t)
	var secret []byte
	activate := func(blob, enc []byte) ([]byte, error) {
		s, err := tt.a.ActivateCredential(blob, enc)
		secret = bytes.Clone(s)
		return s, err
	}
	certPEM, err := f.client.EnrollAK(ctx, tt.ekCert, [][]byte{f.m.Intermediate.Raw}, tt.ak, activate)
	if err != nil {
		t.Fatalf("EnrollAK: %v\nlogs: %s", err, f.logs)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(f.ca); err != nil {
		t.Errorf("the AK certificate is not the privacy CA's: %v", err)
	}
	caPEM, err := f.client.AKCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(caPEM); b == nil || !bytes.Equal(b.Bytes, f.ca.Raw) {
		t.Error("GET /v1/attestation/tpm/ak-ca is not the privacy CA's certificate")
	}

	a := attesterWithCert{Attester: tt.a, certs: certPEM}
	rep, err := f.client.Attest(ctx, a, nil, []byte("enrolled"))
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	vt := rep.Report.Claims["vtpm"].(map[string]any)
	ac := vt["ak_certificate"].(map[string]any)
	if vt["ak_trust"] != "certificate" || ac["issuer"] != f.ca.Subject.String() || ac["tpm"].(map[string]any)["model"] != "swtpm" {
		t.Errorf("claims: ak_trust %v, ak_certificate %v", vt["ak_trust"], ac)
	}
	if rep.Status != "affirming" {
		t.Errorf("status %s, want affirming; checks %+v", rep.Status, rep.Report.Checks)
	}

	logs := f.logs.String()
	for _, leak := range []string{hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret)} {
		if len(secret) != 32 || strings.Contains(logs, leak) {
			t.Fatalf("the secret (%d bytes) is in the logs", len(secret))
		}
	}
	for _, want := range []string{"tpm ak credential made", "tpm ak challenge issued", "tpm ak certificate issued"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

// attesterWithCert ships certs with its bundles.
type attesterWithCert struct {
	attestation.Attester
	certs []byte
}

func (a attesterWithCert) Attest(ctx context.Context, rd [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	b, err := a.Attester.Attest(ctx, rd)
	if err == nil {
		b.Certs = a.certs
	}
	return b, err
}

// TestAKEnrolmentRefusals: every refusal of the enrolment endpoints, with
// its status and problem type, and its decision logged.
func TestAKEnrolmentRefusals(t *testing.T) {
	ctx := context.Background()
	f := newEnrolFixture(t, true)
	tt := f.newTPM(t)
	other, err := tpmtest.NewManufacturer("Other TPM Co")
	if err != nil {
		t.Fatal(err)
	}
	ek, err := tpmtest.RSAEK(tt.tpm)
	if err != nil {
		t.Fatal(err)
	}
	certify := func(m *tpmtest.Manufacturer, c tpmtest.EKCert) []byte {
		der, err := m.Certify(ek, c)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	unrestricted, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{SignEncrypt: true, FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true},
			Parameters:       tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{KeyBits: 2048}),
		}),
	}.Execute(tt.tpm)
	if err != nil {
		t.Fatal(err)
	}
	unrestrictedPub, _ := unrestricted.OutPublic.Contents()
	chain := [][]byte{f.m.Intermediate.Raw}
	challenge := func(ekCert []byte, ak []byte) []byte {
		return mustJSON(t, verifier.AKChallengeRequest{EKCertificate: ekCert, EKChain: chain, AKPublic: ak})
	}
	good := challenge(tt.ekCert, tt.ak)
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		typ    string
		log    string
	}{
		{"EK certificate of an unconfigured manufacturer", mustJSON(t, verifier.AKChallengeRequest{EKCertificate: certify(other, tpmtest.EKCert{}), EKChain: [][]byte{other.Intermediate.Raw}, AKPublic: tt.ak}),
			422, "untrusted-root", "does not chain to a configured TPM manufacturer"},
		{"expired EK certificate", challenge(certify(f.m, tpmtest.EKCert{NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}), tt.ak),
			422, "collateral-expired", "is valid from"},
		{"unrestricted attestation key", challenge(tt.ekCert, tpm2.Marshal(unrestrictedPub)), 422, "ak-attributes", "lack [restricted]"},
		{"malformed TPMT_PUBLIC", challenge(tt.ekCert, tt.ak[:40]), 400, "malformed-evidence", "TPMT_PUBLIC"},
		{"malformed base64", []byte(`{"ek_certificate": "!!notbase64", "ak_public": "AAE="}`), 400, "malformed-evidence", "illegal base64"},
		{"unknown member", bytes.Replace(good, []byte(`"ak_public"`), []byte(`"ak_pub"`), 1), 400, "malformed-evidence", "unknown field"},
		{"no attestation key", []byte(`{"ek_certificate": "MAA="}`), 400, "malformed-evidence", "are required"},
		{"two objects", append(slicesClone(good), []byte(`{}`)...), 400, "malformed-evidence", "after the JSON object"},
		{"oversized body", mustJSON(t, verifier.AKChallengeRequest{EKCertificate: tt.ekCert, AKPublic: bytes.Repeat([]byte{1}, 64<<10)}), 413, "too-large", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, typ, body := f.post(t, "/v1/attestation/tpm/ak-challenge", tc.body)
			if status != tc.status || typ != tc.typ {
				t.Errorf("answer %d %s, want %d %s: %s", status, typ, tc.status, tc.typ, body)
			}
			if !strings.Contains(string(body), tc.log) || !strings.Contains(f.logs.String(), tc.log) {
				t.Errorf("the answer or the log lacks %q: %s", tc.log, body)
			}
		})
	}

	// A challenge answered with a wrong secret is refused, and consumed.
	status, _, body := f.post(t, "/v1/attestation/tpm/ak-challenge", good)
	if status != 200 {
		t.Fatalf("challenge: %d %s", status, body)
	}
	var ch verifier.AKChallengeResponse
	if err := json.Unmarshal(body, &ch); err != nil {
		t.Fatal(err)
	}
	if exp := ch.ExpiresAt.Sub(f.clock.now()); exp < 4*time.Minute || exp > 5*time.Minute {
		t.Errorf("challenge expires in %s, want 5 minutes", exp)
	}
	answer := func(id string, secret []byte) []byte {
		return mustJSON(t, verifier.AKCertificateRequest{ChallengeID: id, Secret: secret})
	}
	if status, typ, body := f.post(t, "/v1/attestation/tpm/ak-certificate", answer(ch.ChallengeID, make([]byte, 32))); status != 403 || typ != "activation-failed" {
		t.Errorf("wrong secret: %d %s: %s", status, typ, body)
	}
	secret, err := tt.a.ActivateCredential(ch.CredentialBlob, ch.EncryptedSecret)
	if err != nil {
		t.Fatal(err)
	}
	if status, typ, body := f.post(t, "/v1/attestation/tpm/ak-certificate", answer(ch.ChallengeID, secret)); status != 400 || typ != "invalid-challenge" {
		t.Errorf("the right secret after a wrong one: %d %s: %s", status, typ, body)
	}

	// A challenge answered once cannot be answered again.
	status, _, body = f.post(t, "/v1/attestation/tpm/ak-challenge", good)
	if status != 200 {
		t.Fatalf("challenge: %d %s", status, body)
	}
	json.Unmarshal(body, &ch)
	if secret, err = tt.a.ActivateCredential(ch.CredentialBlob, ch.EncryptedSecret); err != nil {
		t.Fatal(err)
	}
	if status, _, body := f.post(t, "/v1/attestation/tpm/ak-certificate", answer(ch.ChallengeID, secret)); status != 200 || !bytes.HasPrefix(body, []byte("-----BEGIN CERTIFICATE-----")) {
		t.Fatalf("the right secret: %d %s", status, body)
	}
	if status, typ, body := f.post(t, "/v1/attestation/tpm/ak-certificate", answer(ch.ChallengeID, secret)); status != 400 || typ != "invalid-challenge" {
		t.Errorf("replayed challenge: %d %s: %s", status, typ, body)
	}

	// Unknown, malformed and expired challenge ids.
	status, _, body = f.post(t, "/v1/attestation/tpm/ak-challenge", good)
	if status != 200 {
		t.Fatalf("challenge: %d %s", status, body)
	}
	json.Unmarshal(body, &ch)
	f.clock.add(verifier.AKChallengeTTL + time.Second)
	for name, id := range map[string]string{"unknown": strings.Repeat("ab", 16), "malformed": "../nonce/x", "expired": ch.ChallengeID} {
		if status, typ, body := f.post(t, "/v1/attestation/tpm/ak-certificate", answer(id, secret)); status != 400 || typ != "invalid-challenge" {
			t.Errorf("%s challenge: %d %s: %s", name, status, typ, body)
		}
	}
	for name, body := range map[string][]byte{
		"oversized answer":  answer(ch.ChallengeID, bytes.Repeat([]byte{1}, 4<<10)),
		"malformed answer":  []byte(`{"challenge_id": 7}`),
		"malformed secret ": []byte(`{"challenge_id": "ab", "secret": "%%%"}`),
	} {
		want := 400
		if strings.HasPrefix(name, "oversized") {
			want = 413
		}
		if status, typ, b := f.post(t, "/v1/attestation/tpm/ak-certificate", body); status != want {
			t.Errorf("%s: %d %s: %s", name, status, typ, b)
		}
	}
	logs := f.logs.String()
	for _, want := range []string{"tpm ak certificate refused", "not the credential made for the EK certificate", "was already answered", "tpm ak enrolment refused"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}

	// The client maps the refusals to their kinds.
	if _, err := f.client.EnrollAK(ctx, tt.ekCert, chain, tpm2.Marshal(unrestrictedPub), tt.a.ActivateCredential); !errors.Is(err, fault.Untrusted) {
		t.Errorf("EnrollAK with an unrestricted key: %v, want fault.Untrusted", err)
	}
	if _, err := f.client.EnrollAK(ctx, certify(other, tpmtest.EKCert{}), nil, tt.ak, tt.a.ActivateCredential); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("EnrollAK with another manufacturer's EK certificate: %v, want ErrUntrustedRoot", err)
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// TestAKEnrolmentOtherTPM: an AK of TPM B presented with TPM A's EK
// certificate is not certified. TPM B cannot activate the credential, and
// any secret sent instead is refused.
func TestAKEnrolmentOtherTPM(t *testing.T) {
	ctx := context.Background()
	f := newEnrolFixture(t, true)
	tpmA, tpmB := f.newTPM(t), f.newTPM(t)
	chain := [][]byte{f.m.Intermediate.Raw}
	_, err := f.client.EnrollAK(ctx, tpmA.ekCert, chain, tpmB.ak, tpmB.a.ActivateCredential)
	if !errors.Is(err, tpm.ErrActivation) {
		t.Errorf("TPM B activating a credential for TPM A's EK: %v, want tpm.ErrActivation", err)
	}
	_, err = f.client.EnrollAK(ctx, tpmA.ekCert, chain, tpmB.ak, tpmA.a.ActivateCredential)
	if !errors.Is(err, tpm.ErrActivation) {
		t.Errorf("TPM A activating a credential for TPM B's AK: %v, want tpm.ErrActivation", err)
	}
	guess := func([]byte, []byte) ([]byte, error) { return bytes.Repeat([]byte{0x42}, 32), nil }
	_, err = f.client.EnrollAK(ctx, tpmA.ekCert, chain, tpmB.ak, guess)
	if !errors.Is(err, fault.Denied) || !strings.Contains(err.Error(), "403") {
		t.Errorf("a guessed secret: %v, want a 403 of kind fault.Denied", err)
	}
	// Each TPM with its own EK certificate enrols.
	for _, tt := range []*testTPM{tpmA, tpmB} {
		if _, err := f.client.EnrollAK(ctx, tt.ekCert, chain, tt.ak, tt.a.ActivateCredential); err != nil {
			t.Errorf("EnrollAK: %v", err)
		}
	}
}

// TestAKEnrolmentNotConfigured: a verifier without a privacy CA answers
// the enrolment endpoints 404.
func TestAKEnrolmentNotConfigured(t *testing.T) {
	f := newEnrolFixture(t, false)
	for _, path := range []string{"/v1/attestation/tpm/ak-challenge", "/v1/attestation/tpm/ak-certificate"} {
		if status, typ, body := f.post(t, path, []byte(`{}`)); status != 404 || typ != "no-ak-ca" {
			t.Errorf("POST %s: %d %s: %s", path, status, typ, body)
		}
	}
	if _, err := f.client.AKCA(context.Background()); !errors.Is(err, fault.NotFound) {
		t.Errorf("AKCA: %v, want fault.NotFound", err)
	}
}

// FuzzParseAKChallengeRequest: whatever the challenge request parser
// accepts has both required members and marshals back to a request it
// parses the same.
func FuzzParseAKChallengeRequest(f *testing.F) {
	m, err := tpmtest.NewManufacturer("Fuzz TPM Co")
	if err != nil {
		f.Fatal(err)
	}
	ak, err := os.ReadFile("../attestation/tpm/testdata/swtpm/ak.tpmt")
	if err != nil {
		f.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ekCert, err := m.Certify(&key.PublicKey, tpmtest.EKCert{})
	if err != nil {
		f.Fatal(err)
	}
	for _, req := range []verifier.AKChallengeRequest{
		{EKCertificate: ekCert, AKPublic: ak},
		{EKCertificate: ekCert, EKChain: [][]byte{m.Intermediate.Raw, m.Root.Raw}, AKPublic: ak},
	} {
		b, err := json.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"ek_certificate": "MAA=", "ak_public": "AAE=", "ek_chain": null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := verifier.ParseAKChallengeRequest(body)
		if err != nil {
			if !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("refused without ErrMalformed: %v", err)
			}
			return
		}
		if len(req.EKCertificate) == 0 || len(req.AKPublic) == 0 {
			t.Fatal("accepted without ek_certificate or ak_public")
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := verifier.ParseAKChallengeRequest(again)
		if err != nil {
			t.Fatalf("re-marshalled request refused: %v", err)
		}
		if !bytes.Equal(req2.EKCertificate, req.EKCertificate) || !bytes.Equal(req2.AKPublic, req.AKPublic) || len(req2.EKChain) != len(req.EKChain) {
			t.Fatal("re-marshalled request parses differently")
		}
	})
}
