package trust

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/nvidia"
	"github.com/kura-cc/kura/attestation/nvidia/nvidiatest"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// world is a verifier (sim in dev mode, NVIDIA GPUs under a test GPU's
// root) over HTTP, a transparency log, an approver, and a gateway's
// attester with its test GPU.
type world struct {
	t        *testing.T
	verifier *verifier.Client
	jwks     string // file
	gpu      *nvidiatest.GPU
	simA     *sim.Attester
	log      *auditlog.Log
	logKey   string
	approver *party.Identity
}

func newWorld(t *testing.T) *world { return newWorldRef(t, nil) }

// newWorldRef is newWorld whose verifier appraises with reference values ref.
func newWorldRef(t *testing.T, ref *appraisal.ReferenceValues) *world {
	t.Helper()
	ctx := context.Background()
	gpu, err := nvidiatest.New()
	if err != nil {
		t.Fatal(err)
	}
	simV, _ := sim.NewVerifier(sim.Config{})
	nvV, err := nvidia.NewVerifier(nvidia.Config{Roots: []*x509.Certificate{gpu.Root}})
	if err != nil {
		t.Fatal(err)
	}
	ap, err := appraisal.New(ctx, appraisal.Config{DevMode: true, Reference: ref})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: "kura test"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.Sim: simV, attestation.NVIDIA: nvV}, Appraiser: ap, Issuer: iss})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Register(mux, nil)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, iss.JWKS(), 0o644); err != nil {
		t.Fatal(err)
	}
	simA, err := sim.NewAttester(sim.AttesterConfig{Measurement: bytes.Repeat([]byte{7}, sim.MeasurementSize)})
	if err != nil {
		t.Fatal(err)
	}
	lk, vkey, err := auditlog.GenerateKey("kura.test/log")
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, auditlog.Config{Dir: t.TempDir(), Key: lk, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	approver, err := party.Generate("gateway-builders", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, verifier: &verifier.Client{BaseURL: srv.URL, HTTP: srv.Client()}, jwks: jwks, gpu: gpu, simA: simA, log: l, logKey: vkey, approver: approver}
}

// approve signs an approval of measurement on tee by id and logs it,
// returning the approval and its proof.
func (w *world) approve(id *party.Identity, tee, measurement string) (build, proof []byte) {
	w.t.Helper()
	b := &Build{TEE: tee, Measurement: measurement, Version: "1.4.2", Source: "https://example.com/gateway@4f1c", ApprovedAt: time.Now().UTC()}
	if err := b.Sign(id); err != nil {
		w.t.Fatal(err)
	}
	build, _ = b.Marshal()
	digest, _ := b.Digest()
	p, err := w.log.AppendAndProve(context.Background(), &auditlog.Entry{Kind: auditlog.KindInferenceBuild, Time: time.Now().UTC(), Subject: digest, Party: b.Approver, TEE: tee, Measurement: measurement})
	if err != nil {
		w.t.Fatal(err)
	}
	proof, _ = json.Marshal(p)
	return build, proof
}

// simMeasurement is the gateway's measurement: the sim attester's.
var simMeasurement = strings.Repeat("07", sim.MeasurementSize)

// publish attests keys with the sim TEE (and the test GPU, when gpu) and
// returns the document.
func (w *world) publish(keys []byte, gpu bool, build, proof []byte) []byte {
	w.t.Helper()
	cfg := PublisherConfig{Verifier: w.verifier, Attester: w.simA, Keys: func() []byte { return keys }, Build: build, BuildProof: proof}
	if gpu {
		cfg.Devices = []attestation.DeviceAttester{{Name: "gpu0", Attester: w.gpu}}
	}
	p, err := NewPublisher(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := p.Refresh(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/kura/attestation", nil))
	if rec.Code != http.StatusOK {
		w.t.Fatalf("publisher answered %d", rec.Code)
	}
	return rec.Body.Bytes()
}

func (w *world) policy(edit func(p *Policy)) *Policy {
	w.t.Helper()
	p := &Policy{Verifiers: []string{w.jwks}, MaxAge: time.Minute}
	p.Gateway.Measurements = []Measurement{{TEE: "sim", Value: simMeasurement}}
	p.Gateway.AllowInsecure = true
	p.GPU.Required = true
	p.BuildLog.Key = w.logKey
	p.BuildLog.Approvers = []string{w.approver.Card().Fingerprint}
	if edit != nil {
		edit(p)
	}
	return p
}

func (w *world) check(p *Policy, keys, doc []byte) (*Status, error) {
	w.t.Helper()
	c, err := NewChecker(context.Background(), CheckerConfig{Policy: p})
	if err != nil {
		w.t.Fatal(err)
	}
	return c.Check(context.Background(), keys, doc)
}

// TestCheck: a gateway attested with its GPU, whose build a trusted
// approver logged, is trusted, and the status says what was verified.
func TestCheck(t *testing.T) {
	w := newWorld(t)
	keys := []byte("key configurations")
	build, proof := w.approve(w.approver, "sim", simMeasurement)
	doc := w.publish(keys, true, build, proof)
	st, err := w.check(w.policy(nil), keys, doc)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if st.TEE != "sim" || !st.Insecure || st.Measurement != simMeasurement || st.GPU == nil || st.GPU.TEE != "nvidia" || st.GPU.Driver != "570.86.15" ||
		st.Build == nil || st.Build.Version != "1.4.2" || st.Build.LogOrigin != "kura.test/log" || st.Expires.IsZero() {
		t.Errorf("status = %+v (gpu %+v, build %+v)", st, st.GPU, st.Build)
	}
}

// TestCheckRefusals: every check refuses what does not fit, naming why.
func TestCheckRefusals(t *testing.T) {
	w := newWorld(t)
	keys := []byte("key configurations")
	build, proof := w.approve(w.approver, "sim", simMeasurement)
	doc := w.publish(keys, true, build, proof)
	noGPU := w.publish(keys, false, build, proof)
	noBuild := w.publish(keys, true, nil, nil)
	otherBuild, otherProof := w.approve(w.approver, "sim", strings.Repeat("08", sim.MeasurementSize))
	wrongBuild := w.publish(keys, true, otherBuild, otherProof)
	stranger, _ := party.Generate("someone-else", party.KEMX25519)
	sb, sp := w.approve(stranger, "sim", simMeasurement)
	strangerBuild := w.publish(keys, true, sb, sp)
	tamperedProof := bytes.Replace(doc, []byte(`"checkpoint":"kura.test/log`), []byte(`"checkpoint":"kura.test/lgo`), 1)

	for _, tc := range []struct {
		name string
		edit func(p *Policy)
		keys []byte
		doc  []byte
		want error
		msg  string
	}{
		{"other keys", nil, []byte("other keys"), doc, ErrUntrusted, "not the ones its attestation binds"},
		{"sim not allowed", func(p *Policy) { p.Gateway.AllowInsecure = false }, keys, doc, ErrUntrusted, "INSECURE"},
		{"measurement not allowed", func(p *Policy) { p.Gateway.Measurements[0].Value = strings.Repeat("09", 48) }, keys, doc, ErrUntrusted, "not one the policy allows"},
		{"gpu missing", nil, keys, noGPU, ErrUntrusted, "no gpu0"},
		{"gpu measurement not allowed", func(p *Policy) { p.GPU.Measurements = []string{strings.Repeat("aa", 48)} }, keys, doc, ErrUntrusted, "GPU measurement"},
		{"no build approval", nil, keys, noBuild, ErrUntrusted, "shows no approval"},
		{"approval of another build", nil, keys, wrongBuild, ErrUntrusted, "is for"},
		{"untrusted approver", nil, keys, strangerBuild, ErrUntrusted, "does not trust"},
		{"tampered log proof", nil, keys, tamperedProof, ErrUntrusted, "log proof"},
		{"untrusted verifier", func(p *Policy) { p.Verifiers = []string{otherJWKS(t)} }, keys, doc, ErrUntrusted, "attestation token"},
		{"not a document", nil, keys, []byte(`{"version":1}`), ErrMalformed, "no token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.check(w.policy(tc.edit), tc.keys, tc.doc)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %v naming %q", err, tc.want, tc.msg)
			}
		})
	}
	// Without a GPU requirement, the gateway without a GPU is trusted.
	if _, err := w.check(w.policy(func(p *Policy) { p.GPU.Required = false }), keys, noGPU); err != nil {
		t.Errorf("no GPU required: %v", err)
	}
}

// TestCheckGPUNotAffirming: a GPU the verifier appraised below affirming
// (its measurement is not a reference value) is refused under a policy
// requiring a GPU, though its evidence verified.
func TestCheckGPUNotAffirming(t *testing.T) {
	ref, err := appraisal.ParseReferenceValues([]byte("nvidia: {measurements: {\"1\": [" + strings.Repeat("ee", 48) + "]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := newWorldRef(t, ref)
	keys := []byte("key configurations")
	build, proof := w.approve(w.approver, "sim", simMeasurement)
	doc := w.publish(keys, true, build, proof)
	if _, err := w.check(w.policy(nil), keys, doc); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "appraised the gateway's GPU") {
		t.Errorf("GPU appraised warning: %v, want ErrUntrusted", err)
	}
}

// otherJWKS writes a JWKS of a verifier key nobody uses.
func otherJWKS(t *testing.T) string {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	iss, err := token.NewIssuer(token.IssuerConfig{Key: key, Build: "other"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(path, iss.JWKS(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestParsePolicy refuses policies that would trust any gateway or are
// malformed.
func TestParsePolicy(t *testing.T) {
	ok := "verifiers: [v.json]\ngateway: {measurements: [{tee: snp, value: " + strings.Repeat("ab", 48) + "}]}\n"
	if p, err := ParsePolicy([]byte(ok)); err != nil || p.MaxAge != 5*time.Minute {
		t.Fatalf("ParsePolicy: %v, %+v", err, p)
	}
	for name, doc := range map[string]string{
		"no verifier":     "gateway: {measurements: [{tee: snp, value: " + strings.Repeat("ab", 48) + "}]}\n",
		"trusts anything": "verifiers: [v.json]\n",
		"no approvers":    "verifiers: [v.json]\nbuild_log: {key: k}\n",
		"bad approver":    "verifiers: [v.json]\nbuild_log: {key: k, approvers: [abc]}\n",
		"unknown key":     ok + "gpu: {require: true}\n",
		"bad gpu value":   ok + "gpu: {measurements: [abcd]}\n",
	} {
		if _, err := ParsePolicy([]byte(doc)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestParseBuild refuses a tampered or mis-attributed approval.
func TestParseBuild(t *testing.T) {
	id, _ := party.Generate("builder", party.KEMX25519)
	b := &Build{TEE: "snp", Measurement: strings.Repeat("ab", 48), Version: "1", Source: "src", ApprovedAt: time.Now().UTC()}
	if err := b.Sign(id); err != nil {
		t.Fatal(err)
	}
	data, _ := b.Marshal()
	if _, err := ParseBuild(data); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(b *Build){
		"measurement changed": func(b *Build) { b.Measurement = strings.Repeat("cd", 48) },
		"approver changed":    func(b *Build) { b.Approver = strings.Repeat("00", 32) },
	} {
		c := *b
		mutate(&c)
		data, _ := c.Marshal()
		if _, err := ParseBuild(data); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: %v, want ErrUntrusted", name, err)
		}
	}
	if _, err := ParseBuild(append(data, 'x')); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing data: %v", err)
	}
}
