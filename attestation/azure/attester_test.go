package azure

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/captures"
	"github.com/kura-cc/kura/internal/swtpm"
	"github.com/kura-cc/kura/verifier"
)

// These tests emulate an Azure vTPM on swtpm: what kura's Attester reads
// and quotes is real TPM behaviour, but the HCL report is one the test
// made, so its hardware report cannot bind its runtime data (that takes a
// report AMD's or Intel's hardware signed over it, on Azure). Verification
// therefore runs with a stand-in for the hardware verifier that reports
// the runtime data's hash as the hardware report_data (for SNP after
// verifying the captured Genoa report for real); every later step — the
// runtime data, the attestation key, the swtpm quote's signature, the PCR
// digest and the runtime-data binding — is checked for real.

// hclNVSize is the size of the emulated HCL report index: Azure pads its
// report to the index's size (2048 bytes on SNP VMs), and the paravisor's
// rewrite must fit.
const hclNVSize = 2048

// vtpm is an Azure vTPM emulated on swtpm: an HCL report at NV index
// 0x01400001 naming a restricted signing key persisted at 0x81000003, and
// a paravisor that rewrites the report, with the user data the guest wrote
// to NV index 0x01400002, lag commands after that write (never when lag is
// negative).
type vtpm struct {
	t       *testing.T
	tpm     transport.TPM
	ak      *rsa.PublicKey
	named   *rsa.PublicKey // the key the HCL report names: ak, unless a test says otherwise
	tee     attestation.TEE
	lag     int
	pending []byte // user data written and not yet reported
	wait    int
}

func newVTPM(t *testing.T, tee attestation.TEE, lag int) *vtpm {
	t.Helper()
	v := &vtpm{t: t, tpm: swtpm.Start(t), tee: tee, lag: lag}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{SignEncrypt: true, Restricted: true, FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true},
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
				Scheme:  tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSASSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256})},
				KeyBits: 2048,
			}),
		}),
	}.Execute(v.tpm)
	if err != nil {
		t.Fatalf("create AK: %v", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	parms, _ := pub.Parameters.RSADetail()
	unique, _ := pub.Unique.RSA()
	if v.ak, err = tpm2.RSAPub(parms, unique); err != nil {
		t.Fatal(err)
	}
	v.named = v.ak
	if _, err := (tpm2.EvictControl{Auth: ownerAuth(), ObjectHandle: tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, PersistentHandle: akHandle}).Execute(v.tpm); err != nil {
		t.Fatalf("persist AK: %v", err)
	}
	if _, err := (tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}).Execute(v.tpm); err != nil {
		t.Fatal(err)
	}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: ownerAuth(), PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
		NVIndex: hclReportIndex, NameAlg: tpm2.TPMAlgSHA256, DataSize: hclNVSize,
		Attributes: tpm2.TPMANV{OwnerWrite: true, OwnerRead: true, AuthWrite: true, AuthRead: true, NT: tpm2.TPMNTOrdinary},
	})}).Execute(v.tpm); err != nil {
		t.Fatalf("define the HCL report index: %v", err)
	}
	v.writeReport("00")
	return v
}

// runtime returns the runtime data of a report with userData.
func (v *vtpm) runtime(userData string) []byte {
	return bytes.Replace(runtimeJSON(v.named), []byte(`"user-data":"00"`), []byte(`"user-data":"`+userData+`"`), 1)
}

// report returns the HCL report the emulated paravisor writes for
// userData: for SNP around the captured Genoa report, for TDX around the
// captured Azure TD report with report_data the runtime data's SHA-256.
func (v *vtpm) report(userData string) []byte {
	v.t.Helper()
	runtime := v.runtime(userData)
	var hcl []byte
	if v.tee == attestation.AzSNPvTPM {
		report, _ := genoaReport(v.t)
		hcl = makeHCL(report, reportTypeSNP, hashTypeSHA256, runtime, hclNVSize)
	} else {
		td := bytes.Clone(captures.AzureTDXHCLReport()[hwAreaOffset : hwAreaOffset+tdReportSize])
		d := sha256.Sum256(runtime)
		copy(td[tdrReportData:], d[:])
		clear(td[tdrReportData+32 : tdrReportData+64])
		hcl = makeHCL(td, reportTypeTDX, hashTypeSHA256, runtime, hclNVSize)
	}
	if len(hcl) != hclNVSize {
		v.t.Fatalf("HCL report of %d bytes does not fit the %d-byte index", len(hcl), hclNVSize)
	}
	return hcl
}

func (v *vtpm) writeReport(userData string) {
	v.t.Helper()
	hcl := v.report(userData)
	for off := 0; off < len(hcl); off += 1024 {
		_, name, err := nvPublic(v.tpm, hclReportIndex) // the name changes with the first write
		if err != nil {
			v.t.Fatal(err)
		}
		if _, err := (tpm2.NVWrite{AuthHandle: ownerAuth(), NVIndex: tpm2.NamedHandle{Handle: hclReportIndex, Name: name}, Data: tpm2.TPM2BMaxNVBuffer{Buffer: hcl[off:min(off+1024, len(hcl))]}, Offset: uint16(off)}).Execute(v.tpm); err != nil {
			v.t.Fatalf("write the HCL report: %v", err)
		}
	}
}

// Send passes cmd to swtpm, and plays the paravisor.
func (v *vtpm) Send(cmd []byte) ([]byte, error) {
	if v.pending != nil {
		if v.wait == 0 {
			v.writeReport(strings.ToUpper(hex.EncodeToString(v.pending)))
			v.pending = nil
		} else {
			v.wait--
		}
	}
	rsp, err := v.tpm.Send(cmd)
	// TPM2_NV_Write: header (10 bytes), authHandle, nvIndex, authorization
	// size and area, then the data, a TPM2B_MAX_NV_BUFFER.
	if err == nil && v.lag >= 0 && len(cmd) > 22 && binary.BigEndian.Uint32(cmd[6:]) == uint32(tpm2.TPMCCNVWrite) &&
		binary.BigEndian.Uint32(cmd[14:]) == uint32(userDataIndex) && len(rsp) >= 10 && binary.BigEndian.Uint32(rsp[6:]) == 0 {
		off := 22 + int(binary.BigEndian.Uint32(cmd[18:]))
		n := int(binary.BigEndian.Uint16(cmd[off:]))
		v.pending, v.wait = bytes.Clone(cmd[off+2:off+2+n]), v.lag
	}
	return rsp, err
}

// fakeIMDS is Azure's instance metadata service, as far as the Attester
// uses it, on a local server; client reaches it at 169.254.169.254.
type fakeIMDS struct {
	client   *http.Client
	tdReport []byte // the TD report last posted
	tdQuote  []byte
	certs    []byte // the VCEK and chain served, PEM
	status   int    // answer every request with this status when not 0
}

func newFakeIMDS(t *testing.T) *fakeIMDS {
	t.Helper()
	_, pemCerts := captures.AzureSNPHCLReport()
	f := &fakeIMDS{tdQuote: []byte("a TD quote from the quoting enclave")}
	vcek, rest := pem.Decode(pemCerts)
	if vcek == nil {
		t.Fatal("azure/certs.pem: no PEM block")
	}
	f.certs = []byte(strings.TrimSpace(string(pem.EncodeToMemory(vcek))) + "\n" + strings.TrimSpace(string(rest)) + "\n")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /acc/tdquote", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Report string `json:"report"`
		}
		if f.status != 0 || r.Header.Get("Metadata") != "true" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "no", max(f.status, http.StatusBadRequest))
			return
		}
		f.tdReport, _ = base64.RawURLEncoding.DecodeString(req.Report)
		json.NewEncoder(w).Encode(map[string]string{"quote": base64.URLEncoding.EncodeToString(f.tdQuote)})
	})
	mux.HandleFunc("GET /metadata/THIM/amd/certification", func(w http.ResponseWriter, r *http.Request) {
		if f.status != 0 || r.Header.Get("Metadata") != "true" {
			http.Error(w, "no", max(f.status, http.StatusBadRequest))
			return
		}
		vcek, chain, _ := strings.Cut(string(f.certs), "-----END CERTIFICATE-----\n")
		json.NewEncoder(w).Encode(map[string]string{"vcekCert": vcek + "-----END CERTIFICATE-----\n", "certificateChain": chain})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.client = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
	}}}
	return f
}

// newAzureAttester returns an Attester on v and f, closed when the test
// ends.
func newAzureAttester(t *testing.T, v *vtpm, f *fakeIMDS, logs *bytes.Buffer) *Attester {
	t.Helper()
	a, err := NewAttester(AttesterConfig{Transport: v, HTTPClient: f.client, ReportTimeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatalf("NewAttester: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	return a
}

// verifyService returns the verifier service with an Azure verifier whose
// hardware verifier is hw.
func verifyService(t *testing.T, tee attestation.TEE, hw attestation.Verifier) *verifier.Service {
	t.Helper()
	ap, err := appraisal.New(context.Background(), appraisal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{SNP: hw}
	if tee == attestation.AzTDXvTPM {
		cfg = Config{TDX: hw}
	}
	svc, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{tee: newVerifier(t, cfg)}, Appraiser: ap})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestAttesterEmulated produces az-snp-vtpm and az-tdx-vtpm evidence on
// an emulated vTPM (see the top of this file) and verifies it through the
// verifier service: the fresh HCL report, the quote, the TD quote or VCEK
// from IMDS, the binding; evidence for other report data fails binding.
func TestAttesterEmulated(t *testing.T) {
	// The paravisor rewrites the report while the Attester polls for it:
	// each poll reads the index's public area, the TPM's NV buffer size
	// and the 2048-byte report in two 1024-byte reads, so after 3 commands
	// the rewrite lands between the two reads (a torn read), after 6 between
	// two polls.
	for _, tc := range []struct {
		tee attestation.TEE
		lag int
	}{{attestation.AzSNPvTPM, 3}, {attestation.AzTDXvTPM, 6}} {
		tee := tc.tee
		t.Run(string(tee), func(t *testing.T) {
			ctx := context.Background()
			v := newVTPM(t, tee, tc.lag)
			f := newFakeIMDS(t)
			var logs bytes.Buffer
			a := newAzureAttester(t, v, f, &logs)
			if a.TEE() != tee {
				t.Fatalf("TEE() = %s, want %s", a.TEE(), tee)
			}
			rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{0x42}, 32), PublicKey: []byte(`{"kty":"EC"}`), Context: []byte("run 1")}
			want := rd.ReportData()
			b, err := a.Attest(ctx, want)
			if err != nil {
				t.Fatalf("Attest: %v", err)
			}
			b.RuntimeData = rd
			data, err := b.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if b, err = attestation.ParseBundle(data); err != nil {
				t.Fatal(err)
			}

			hcl, err := parseHCLReport(b.Evidence)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(hcl.runtimeData, v.runtime(strings.ToUpper(hex.EncodeToString(want[:])))) || !strings.Contains(logs.String(), "fresh_hcl_report=true") {
				t.Errorf("not the fresh HCL report: runtime data %s; log %s", hcl.runtimeData, logs.String())
			}
			q, err := ParseTPMQuote(b.VTPM.Quote, b.VTPM.Signature)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(q.ExtraData(), want[:]) || len(b.VTPM.PCRs) != 24 {
				t.Errorf("quote extraData %x, %d PCR values", q.ExtraData(), len(b.VTPM.PCRs))
			}

			var hw attestation.Verifier
			if tee == attestation.AzTDXvTPM {
				if !bytes.Equal(f.tdReport, hcl.hardware) || !bytes.Equal(b.VTPM.TDQuote, f.tdQuote) || b.Certs != nil {
					t.Errorf("IMDS got TD report %x..., bundle has TD quote %q and certs %d bytes", f.tdReport[:8], b.VTPM.TDQuote, len(b.Certs))
				}
				hw = &fakeHW{tee: attestation.TDX, claims: tdxClaimsOf(t, hcl.hardware), reportData: hcl.hardware[tdrReportData : tdrReportData+64]}
			} else {
				if !bytes.Equal(b.Certs, f.certs) || b.VTPM.TDQuote != nil {
					t.Errorf("certs %q, TD quote %d bytes", b.Certs, len(b.VTPM.TDQuote))
				}
				// The VCEK IMDS served is another chip's; the captured
				// Genoa report verifies with its own.
				_, b.Certs = genoaReport(t)
				hw = snpFake(t, hcl.runtimeData)
			}
			svc := verifyService(t, tee, hw)
			rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce})
			if err != nil {
				t.Fatalf("Verify: %v; checks %+v", err, rep.Checks)
			}
			for _, c := range rep.Checks {
				if c.Status == attestation.Failed || (c.Name == "binding" && c.Status != attestation.Passed) {
					t.Errorf("check %s: %s %s", c.Name, c.Status, c.Detail)
				}
			}

			other := attestation.RuntimeData{Nonce: rd.Nonce, PublicKey: rd.PublicKey, Context: []byte("run 2")}
			b2, err := a.Attest(ctx, other.ReportData())
			if err != nil {
				t.Fatal(err)
			}
			b2.RuntimeData, b2.Certs = rd, b.Certs
			if tee == attestation.AzSNPvTPM {
				h2, _ := parseHCLReport(b2.Evidence)
				svc = verifyService(t, tee, snpFake(t, h2.runtimeData))
			} else {
				h2, _ := parseHCLReport(b2.Evidence)
				svc = verifyService(t, tee, &fakeHW{tee: attestation.TDX, claims: tdxClaimsOf(t, h2.hardware), reportData: h2.hardware[tdrReportData : tdrReportData+64]})
			}
			if _, err := svc.Verify(ctx, b2, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce}); !errors.Is(err, attestation.ErrBinding) {
				t.Errorf("other report data: %v, want ErrBinding", err)
			}
		})
	}
}

// TestAttesterStaleReport checks that without a fresh HCL report the
// Attester uses the one the index holds, and the quote still binds
// report_data.
func TestAttesterStaleReport(t *testing.T) {
	v := newVTPM(t, attestation.AzSNPvTPM, -1)
	f := newFakeIMDS(t)
	var logs bytes.Buffer
	a, err := NewAttester(AttesterConfig{Transport: v, HTTPClient: f.client, ReportTimeout: 300 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	want := [attestation.ReportDataSize]byte{1, 2, 3}
	b, err := a.Attest(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Evidence, v.report("00")) || !strings.Contains(logs.String(), "no fresh HCL report") {
		t.Errorf("evidence is not the boot-time report; log %s", logs.String())
	}
	q, err := ParseTPMQuote(b.VTPM.Quote, b.VTPM.Signature)
	if err != nil || !bytes.Equal(q.ExtraData(), want[:]) {
		t.Errorf("quote: %v, extraData %x", err, q.ExtraData())
	}
}

// TestAttesterRefuses checks the Attester's errors: no vTPM, a TPM that is
// not Azure's, a report naming another key, IMDS unavailable.
func TestAttesterRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := NewAttester(AttesterConfig{Device: filepath.Join(t.TempDir(), "tpmrm0")}); !errors.Is(err, attestation.ErrNoTEE) {
		t.Errorf("no device: %v, want ErrNoTEE", err)
	}
	if _, err := NewAttester(AttesterConfig{Transport: swtpm.Start(t)}); !errors.Is(err, attestation.ErrNoTEE) || !strings.Contains(err.Error(), "not an Azure confidential VM") {
		t.Errorf("a TPM without an HCL report: %v, want ErrNoTEE saying it is not an Azure confidential VM", err)
	}

	v := newVTPM(t, attestation.AzSNPvTPM, 0)
	v.named = &testKey().PublicKey
	v.writeReport("00")
	var logs bytes.Buffer
	a := newAzureAttester(t, v, newFakeIMDS(t), &logs)
	if _, err := a.Attest(ctx, [attestation.ReportDataSize]byte{1}); !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "HCLAkPub") {
		t.Errorf("report naming another key: %v, want ErrBinding naming HCLAkPub", err)
	}

	f := newFakeIMDS(t)
	f.status = http.StatusServiceUnavailable
	tdx := newAzureAttester(t, newVTPM(t, attestation.AzTDXvTPM, 0), f, &logs)
	if _, err := tdx.Attest(ctx, [attestation.ReportDataSize]byte{1}); !errors.Is(err, attestation.ErrCollateralUnavailable) || !strings.Contains(err.Error(), "503") {
		t.Errorf("TDX without IMDS: %v, want ErrCollateralUnavailable", err)
	}
	logs.Reset()
	snp := newAzureAttester(t, newVTPM(t, attestation.AzSNPvTPM, 0), f, &logs)
	b, err := snp.Attest(ctx, [attestation.ReportDataSize]byte{1})
	if err != nil || b.Certs != nil || !strings.Contains(logs.String(), "no VCEK from IMDS") {
		t.Errorf("SNP without IMDS: %v, certs %d bytes; log %s", err, len(b.Certs), logs.String())
	}
	if err := snp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := snp.Attest(ctx, [attestation.ReportDataSize]byte{1}); err == nil {
		t.Error("Attest after Close succeeded")
	}
}
