package live

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/nvidia"
	"github.com/kura-cc/kura/internal/captures"
)

// testLogger logs to t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// TestLiveGPU attests this machine's first NVIDIA GPU through NVML and
// verifies the report under NVIDIA's embedded root, for a random nonce. It
// skips, saying why, where there is no NVIDIA driver or GPU (CI). With CC
// off or devtools on, it checks the refusal and then attests with
// AllowCCOff.
func TestLiveGPU(t *testing.T) {
	ctx := context.Background()
	a, err := NewAttester(AttesterConfig{Logger: testLogger(t)})
	if err != nil {
		if !errors.Is(err, attestation.ErrNoTEE) {
			t.Fatalf("NewAttester: %v, want an error wrapping ErrNoTEE", err)
		}
		diag, derr := NewAttester(AttesterConfig{Logger: testLogger(t), AllowCCOff: true})
		if derr != nil {
			t.Skipf("no NVIDIA GPU to attest here: %v", err)
		}
		defer diag.Close()
		s := diag.State()
		t.Logf("CC state: %+v", s)
		ok, why := s.Ready()
		if ok {
			t.Fatalf("NewAttester refused a GPU whose CC state is ready: %v", err)
		}
		if !strings.Contains(err.Error(), why) {
			t.Errorf("refusal %q does not say why (%q)", err, why)
		}
		a = diag
	} else {
		defer a.Close()
		t.Logf("CC state: %+v", a.State())
	}

	var rd [attestation.ReportDataSize]byte
	rand.Read(rd[:nvidia.NonceSize])
	b, err := a.Attest(ctx, rd)
	if err != nil {
		if ok, why := a.State().Ready(); !ok {
			t.Skipf("%s, and the driver gives no report: %v", why, err)
		}
		t.Fatalf("Attest: %v", err)
	}
	v, err := nvidia.NewVerifier(nvidia.Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.VerifyReport(ctx, b.Evidence, b.Certs, rd[:nvidia.NonceSize])
	if err != nil {
		t.Fatalf("the GPU's report does not verify under NVIDIA's root: %v (checks %+v)", err, res.Checks)
	}
	for _, c := range res.Checks {
		t.Logf("%-8s %-24s %s", c.Status, c.Name, c.Detail)
	}
	if !bytes.Equal(res.ReportData[:nvidia.NonceSize], rd[:nvidia.NonceSize]) {
		t.Errorf("report data %x does not start with the nonce %x", res.ReportData, rd[:nvidia.NonceSize])
	}
	other := bytes.Repeat([]byte{0xA5}, nvidia.NonceSize)
	if _, err := v.VerifyReport(ctx, b.Evidence, b.Certs, other); !errors.Is(err, attestation.ErrBinding) {
		t.Errorf("report verified for another nonce: %v", err)
	}
}

// fakeNVML is an NVML with one or more GPUs that answer with fixed
// evidence, whatever the nonce.
type fakeNVML struct {
	initErr   error
	state     CCState
	gpus      []GPUInfo
	report    []byte
	chain     []byte
	reportErr error
	shutdowns int
}

func (f *fakeNVML) init() error     { return f.initErr }
func (f *fakeNVML) shutdown() error { f.shutdowns++; return nil }

func (f *fakeNVML) system() (CCState, error) {
	s := f.state
	s.GPUCount = len(f.gpus)
	return s, nil
}

func (f *fakeNVML) device(i int) (nvmlDevice, GPUInfo, error) { return fakeGPU{f}, f.gpus[i], nil }

type fakeGPU struct{ f *fakeNVML }

func (g fakeGPU) attestationReport([nvidia.NonceSize]byte) ([]byte, error) {
	return bytes.Clone(g.f.report), g.f.reportErr
}

func (g fakeGPU) attestationCertChain() ([]byte, error) { return bytes.Clone(g.f.chain), nil }

// newFake returns a fake NVML whose one Hopper GPU, CC on, answers with the
// captured report and chain, and the nonce that report answers.
func newFake(t *testing.T) (*fakeNVML, [attestation.ReportDataSize]byte) {
	report, chain, _, nonce := vector(t)
	var rd [attestation.ReportDataSize]byte
	copy(rd[:], nonce)
	return &fakeNVML{
		state:  CCState{DriverVersion: "550.90.07", CCFeature: "on", DevToolsMode: "off", Environment: "prod"},
		gpus:   []GPUInfo{{Name: "NVIDIA H100 80GB HBM3", UUID: "GPU-test", Architecture: "hopper"}},
		report: report,
		chain:  chain,
	}, rd
}

// TestAttesterFake: with a fake NVML, an Attester opens a ready GPU and
// returns a bundle that verifies under NVIDIA's root and answers the
// nonce; it refuses, wrapping ErrNoTEE and naming the state, no driver, no
// such GPU, CC off, devtools on (unless AllowCCOff) and a GPU other than
// Hopper, and reports a GPU that answers another nonce.
func TestAttesterFake(t *testing.T) {
	ctx := context.Background()
	_, chain, roots, _ := vector(t)
	for _, tc := range []struct {
		name    string
		edit    func(*fakeNVML)
		cfg     AttesterConfig
		openErr string // NewAttester fails with ErrNoTEE and this text
		attErr  string // Attest fails with this text
	}{
		{name: "ready"},
		{name: "no driver", edit: func(f *fakeNVML) { f.initErr = errors.New("nvmlInit: ERROR_LIBRARY_NOT_FOUND") },
			openErr: "no NVIDIA driver (libnvidia-ml) on this machine: nvmlInit: ERROR_LIBRARY_NOT_FOUND"},
		{name: "no gpu", edit: func(f *fakeNVML) { f.gpus = nil }, openErr: "NVML sees 0 NVIDIA GPUs; there is no GPU 0"},
		{name: "index", cfg: AttesterConfig{Index: 1}, openErr: "there is no GPU 1"},
		{name: "cc off", edit: func(f *fakeNVML) { f.state.CCFeature = "off" }, openErr: "confidential computing is off"},
		{name: "cc unknown", edit: func(f *fakeNVML) { f.state.CCFeature = "" }, openErr: "confidential computing is unknown"},
		{name: "devtools", edit: func(f *fakeNVML) { f.state.DevToolsMode = "on" }, openErr: "devtools mode is on"},
		{name: "cc off allowed", edit: func(f *fakeNVML) { f.state.CCFeature = "off" }, cfg: AttesterConfig{AllowCCOff: true}},
		{name: "ppcie", edit: func(f *fakeNVML) { f.state.CCFeature, f.state.MultiGPUMode = "off", "protected-pcie" }},
		{name: "ppcie devtools", edit: func(f *fakeNVML) {
			f.state.CCFeature, f.state.MultiGPUMode, f.state.DevToolsMode = "off", "protected-pcie", "on"
		},
			openErr: "devtools mode is on"},
		{name: "devtools allowed", edit: func(f *fakeNVML) { f.state.DevToolsMode = "on" }, cfg: AttesterConfig{AllowCCOff: true}},
		{name: "blackwell", edit: func(f *fakeNVML) { f.gpus[0].Architecture = "blackwell" }, attErr: "is blackwell: kura reads Hopper reports only"},
		{name: "nvml error", edit: func(f *fakeNVML) {
			f.reportErr = errors.New("nvmlDeviceGetConfComputeGpuAttestationReport: ERROR_UNKNOWN")
		},
			attErr: "ERROR_UNKNOWN"},
		{name: "bad report", edit: func(f *fakeNVML) { f.report = f.report[:100] }, attErr: "returned a bad report"},
		{name: "bad chain", edit: func(f *fakeNVML) { f.chain = []byte("not a certificate") }, attErr: "attestation certificate chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, rd := newFake(t)
			if tc.edit != nil {
				tc.edit(f)
			}
			tc.cfg.Logger = testLogger(t)
			a, err := newAttester(tc.cfg, f)
			if tc.openErr != "" {
				if !errors.Is(err, attestation.ErrNoTEE) || !strings.Contains(err.Error(), tc.openErr) {
					t.Fatalf("NewAttester: %v, want ErrNoTEE saying %q", err, tc.openErr)
				}
				if want := 1; f.initErr == nil && f.shutdowns != want {
					t.Errorf("NVML shut down %d times after a refusal, want %d", f.shutdowns, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewAttester: %v", err)
			}
			if a.TEE() != attestation.NVIDIA {
				t.Errorf("TEE %s", a.TEE())
			}
			if s := a.State(); s.GPU.UUID != "GPU-test" || s.DriverVersion != "550.90.07" || s.GPUCount != 1 {
				t.Errorf("State %+v", s)
			}
			b, err := a.Attest(ctx, rd)
			if tc.attErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.attErr) {
					t.Fatalf("Attest: %v, want an error saying %q", err, tc.attErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Attest: %v", err)
			}
			if b.TEE != attestation.NVIDIA || !sameCerts(t, b.Certs, chain) || !b.RuntimeData.Empty() {
				t.Errorf("bundle: tee %s, certs as sent %v, runtime data %+v", b.TEE, sameCerts(t, b.Certs, chain), b.RuntimeData)
			}
			res, err := newVerifier(t, nvidia.Config{Roots: roots}).Verify(ctx, b)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !bytes.Equal(res.ReportData[:nvidia.NonceSize], rd[:nvidia.NonceSize]) {
				t.Errorf("report data %x, want the nonce %x first", res.ReportData, rd[:nvidia.NonceSize])
			}
			if err := a.Close(); err != nil || a.Close() != nil || f.shutdowns != 1 {
				t.Errorf("Close: %v; NVML shut down %d times, want 1", err, f.shutdowns)
			}
			if _, err := a.Attest(ctx, rd); err == nil {
				t.Error("Attest after Close succeeded")
			}
		})
	}
}

// sameCerts reports whether PEM chains a and b hold the same certificates
// in the same order.
func sameCerts(t *testing.T, a, b []byte) bool {
	t.Helper()
	ca, err := nvidia.ParseRoots(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := nvidia.ParseRoots(b)
	if err != nil {
		t.Fatal(err)
	}
	return slices.EqualFunc(ca, cb, (*x509.Certificate).Equal)
}

// TestAttesterNonce: a report for another nonce than reportData[:32] is
// refused.
func TestAttesterNonce(t *testing.T) {
	f, rd := newFake(t)
	a, err := newAttester(AttesterConfig{}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rd[0] ^= 1
	if _, err := a.Attest(context.Background(), rd); err == nil || !strings.Contains(err.Error(), "returned a report for nonce") {
		t.Fatalf("Attest for another nonce: %v", err)
	}
}

// TestAttesterStateChange: the CC state is read again at each Attest; CC
// turned off since NewAttester is refused.
func TestAttesterStateChange(t *testing.T) {
	f, rd := newFake(t)
	a, err := newAttester(AttesterConfig{}, f)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	f.state.CCFeature = "off"
	if _, err := a.Attest(context.Background(), rd); !errors.Is(err, attestation.ErrNoTEE) {
		t.Fatalf("Attest with CC off: %v, want ErrNoTEE", err)
	}
	if s := a.State(); s.CCFeature != "off" || s.GPU.UUID != "GPU-test" {
		t.Errorf("State after Attest: %+v", s)
	}
}

// TestChainPEM: the attestation chain comes out PEM, leaf first, whether
// NVML wrote PEM or DER, leaf or root first, padded with NULs or not;
// anything else is malformed.
func TestChainPEM(t *testing.T) {
	_, chain, _, _ := vector(t)
	var ders [][]byte
	for rest := chain; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		ders = append(ders, b.Bytes)
	}
	if len(ders) != 5 {
		t.Fatalf("captured chain has %d certificates, want 5", len(ders))
	}
	want := func() []byte {
		var out []byte
		for _, d := range ders {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		return out
	}()
	reversed := slices.Clone(ders)
	slices.Reverse(reversed)
	reversedPEM := func() []byte {
		var out []byte
		for _, d := range reversed {
			out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		return out
	}()
	for name, in := range map[string][]byte{
		"pem":            chain,
		"pem padded":     append(bytes.Clone(chain), make([]byte, 300)...),
		"der":            bytes.Join(ders, nil),
		"der padded":     append(bytes.Join(ders, nil), make([]byte, 300)...),
		"der root first": bytes.Join(reversed, nil),
		"pem root first": reversedPEM,
	} {
		got, n, err := chainPEM(in)
		if err != nil || n != 5 || !bytes.Equal(got, want) {
			t.Errorf("%s: %d certificates, err %v, PEM leaf first %v", name, n, err, bytes.Equal(got, want))
		}
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, n, err := chainPEM(ders[0]); err != nil || n != 1 || !bytes.Contains(got, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("leaf alone (%s): %d, %v", leaf.Subject.CommonName, n, err)
	}
	for name, in := range map[string][]byte{
		"empty":        nil,
		"nuls":         make([]byte, 64),
		"garbage":      []byte("\x30\x03\x02\x01"),
		"key pem":      pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}),
		"too many":     bytes.Repeat(ders[0], maxChainCerts+1),
		"der and junk": append(bytes.Clone(ders[0]), 0, 0, 1),
	} {
		if _, _, err := chainPEM(in); !errors.Is(err, attestation.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestCCNames: NVML's values get the names CCState documents; values this
// kura does not know are "unknown (N)".
func TestCCNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ccFeatureName(0), "off"}, {ccFeatureName(1), "on"}, {ccFeatureName(7), "unknown (7)"},
		{devToolsName(0), "off"}, {devToolsName(1), "on"},
		{environmentName(0), "unavailable"}, {environmentName(1), "sim"}, {environmentName(2), "prod"},
		{multiGPUName(0), "none"}, {multiGPUName(1), "protected-pcie"}, {multiGPUName(2), "nvle"},
		{readyName(0), "not ready"}, {readyName(1), "accepting work"},
		{cpuCapsName(2), "intel-tdx"}, {cpuCapsName(3), "amd-sev-snp"}, {cpuCapsName(4), "amd-snp-vtom"},
		{gpusCapsName(1), "cc capable"},
		{archName(9), "hopper"}, {archName(10), "blackwell"}, {archName(0), "unknown (0)"}, {archName(0xFFFFFFFF), "unknown (4294967295)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// vectorTime is when the captured report's chain is valid.
var vectorTime = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)

// vector returns the captured Hopper report, its chain, NVIDIA's root and
// the nonce the report answers.
func vector(t testing.TB) (report, chain []byte, roots []*x509.Certificate, nonce []byte) {
	t.Helper()
	report, chain, rootPEM, nonce := captures.NVIDIAHopper()
	roots, err := nvidia.ParseRoots(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	return report, chain, roots, nonce
}

// newVerifier returns a verifier for cfg at vectorTime.
func newVerifier(t testing.TB, cfg nvidia.Config) *nvidia.Verifier {
	t.Helper()
	cfg.Now = func() time.Time { return vectorTime }
	v, err := nvidia.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
