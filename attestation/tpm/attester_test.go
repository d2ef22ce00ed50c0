package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/internal/tpmquote"
	"github.com/kura-cc/kura/verifier"
)

// writeTemp writes data to a file in dir and returns its path.
func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newAttesterFor returns an Attester on tt's TPM with cfg's other
// settings, closed when the test ends.
func newAttesterFor(t *testing.T, tt *testTPM, cfg AttesterConfig) *Attester {
	t.Helper()
	cfg.Transport = tt.tpm
	a, err := NewAttester(cfg)
	if err != nil {
		t.Fatalf("NewAttester: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a
}

// newService returns a verifier service that trusts ak, with the default
// policy: what kura verifier serve runs for tpm evidence.
func newService(t *testing.T, ak *rsa.PublicKey) *verifier.Service {
	t.Helper()
	ap, err := appraisal.New(context.Background(), appraisal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{AKs: []*rsa.PublicKey{ak}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := verifier.New(verifier.Config{TEEs: map[attestation.TEE]attestation.Verifier{attestation.TPM: v}, Appraiser: ap})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkStatus returns the status of the named check in rep.
func checkStatus(rep *verifier.Report, name string) attestation.CheckStatus {
	for _, c := range rep.Checks {
		if c.Name == name {
			return c.Status
		}
	}
	return ""
}

// TestAttesterSWTPM produces evidence with the Attester on swtpm, after a
// measured boot with its event log and IMA list in files, and verifies it
// through the verifier service with the Attester's key pinned: the quote,
// the replay of both logs, and the binding of the runtime data.
func TestAttesterSWTPM(t *testing.T) {
	ctx := context.Background()
	tt := newTestTPM(t)
	bootAndRun(tt, []byte("kura worker v1"))
	dir := t.TempDir()
	listed := tt.ima.marshal()
	// An entry IMA listed after the quote, or listed and not yet extended:
	// the Attester must leave it out.
	lh := sha256.Sum256([]byte("late"))
	late := (&imaList{entries: []imaEntry{imaNGEntry(crypto.SHA256, "sha256", lh[:], "/usr/bin/late")}}).marshal()
	var logs bytes.Buffer
	a := newAttesterFor(t, tt, AttesterConfig{
		EventLogPath: writeTemp(t, dir, "binary_bios_measurements", tt.log.Marshal()),
		IMAPath:      writeTemp(t, dir, "ascii_runtime_measurements_sha256", append(bytes.Clone(listed), late...)),
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if a.TEE() != attestation.TPM {
		t.Errorf("TEE() = %s", a.TEE())
	}
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{0x5f}, 32), PublicKey: []byte(`{"kty":"EC"}`), Context: []byte("run 7")}
	b, err := a.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	b.RuntimeData = rd
	if !bytes.Equal(b.VTPM.IMALog, listed) {
		t.Errorf("IMA list not trimmed to the quoted entries:\n%s", b.VTPM.IMALog)
	}
	if !bytes.Equal(b.VTPM.EventLog, tt.log.Marshal()) {
		t.Error("event log is not the file's")
	}
	if !strings.Contains(logs.String(), "tpm evidence produced") {
		t.Errorf("log: %s", logs.String())
	}
	// As the CLI writes it and a verifier reads it.
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if b, err = attestation.ParseBundle(data); err != nil {
		t.Fatal(err)
	}

	svc := newService(t, a.ak.RSA)
	rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce})
	if err != nil {
		t.Fatalf("Verify: %v; checks %+v", err, rep.Checks)
	}
	for _, name := range []string{"attestation key pinned", "attestation key attributes", "tpm quote signature", "pcr digest", "event log replay", "freshness", "binding"} {
		if s := checkStatus(rep, name); s != attestation.Passed {
			t.Errorf("check %q: %s, want passed", name, s)
		}
	}
	vt := rep.Claims["vtpm"].(map[string]any)
	if got := strings.Join(vt["replayed_pcrs"].([]string), " "); got != "sha256:0 sha256:1 sha256:2 sha256:3 sha256:4 sha256:5 sha256:6 sha256:7 sha256:8 sha256:9 sha256:10 sha256:14" {
		t.Errorf("replayed PCRs %s", got)
	}
	worker := false
	for _, e := range vt["events"].([]any) {
		worker = worker || e.(map[string]any)["description"] == "/usr/local/bin/kura-worker"
	}
	if !worker {
		t.Error("the worker's IMA entry is not among the verified events")
	}

	// Evidence for other report data, presented with this runtime data:
	// the binding check fails.
	other := attestation.RuntimeData{Nonce: rd.Nonce, PublicKey: rd.PublicKey, Context: []byte("run 8")}
	b2, err := a.Attest(ctx, other.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	b2.RuntimeData = rd
	rep, err = svc.Verify(ctx, b2, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce})
	if !errors.Is(err, attestation.ErrBinding) || checkStatus(rep, "binding") != attestation.Failed {
		t.Errorf("other report data: %v, want ErrBinding at the binding check", err)
	}

	// A configured log that is missing is an error.
	a2 := newAttesterFor(t, tt, AttesterConfig{EventLogPath: filepath.Join(dir, "none"), IMAPath: filepath.Join(dir, "none")})
	if _, err := a2.Attest(ctx, rd.ReportData()); !errors.Is(err, attestation.ErrNoTEE) || !strings.Contains(err.Error(), "event log") {
		t.Errorf("configured logs missing: %v, want an error wrapping ErrNoTEE", err)
	}
	// swtpm holds three transient objects: the test's key, a's and a2's.
	if err := a2.Close(); err != nil {
		t.Fatal(err)
	}

	// The endorsement-hierarchy key is the same every time: a verifier
	// pins it once.
	a3 := newAttesterFor(t, tt, AttesterConfig{EventLogPath: filepath.Join(dir, "binary_bios_measurements"), IMAPath: writeTemp(t, dir, "empty", nil)})
	b3, err := a3.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b3.Evidence, b.Evidence) {
		t.Error("a second Attester made another attestation key")
	}
}

// TestAttesterIMAMismatch checks what reaches the verifier when the IMA
// list cannot be made to replay: an entry was extended but not listed.
func TestAttesterIMAMismatch(t *testing.T) {
	ctx := context.Background()
	tt := newTestTPM(t)
	bootAndRun(tt, []byte("kura worker v1"))
	dir := t.TempDir()
	listed := tt.ima.marshal()
	tt.measureFile("/usr/bin/unlisted", []byte("unlisted"))
	var logs bytes.Buffer
	a := newAttesterFor(t, tt, AttesterConfig{
		EventLogPath: writeTemp(t, dir, "log", tt.log.Marshal()),
		IMAPath:      writeTemp(t, dir, "ima", listed),
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{1}, 32)}
	b, err := a.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.VTPM.IMALog, listed) || !strings.Contains(logs.String(), "does not replay") {
		t.Errorf("IMA list %q; log %s", b.VTPM.IMALog, logs.String())
	}
	v, err := NewVerifier(Config{AKs: []*rsa.PublicKey{a.ak.RSA}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, b); !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "PCR sha256:10") {
		t.Errorf("Verify: %v, want ErrBinding naming PCR sha256:10", err)
	}

	// A template kura cannot check (ima-buf): the verifier would refuse
	// the list, so the Attester leaves it out.
	logs.Reset()
	a2 := newAttesterFor(t, tt, AttesterConfig{
		EventLogPath: filepath.Join(dir, "log"),
		IMAPath:      writeTemp(t, dir, "ima-buf", []byte("10 "+strings.Repeat("00", 32)+" ima-buf sha256:"+strings.Repeat("11", 32)+" kexec-cmdline 6c696e7578\n")),
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	b, err = a2.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	if b.VTPM.IMALog != nil || !strings.Contains(logs.String(), "leaving the IMA list out") {
		t.Errorf("IMA list %q; log %s", b.VTPM.IMALog, logs.String())
	}
}

// TestAttesterSHA1IMAList checks that an IMA list of SHA-1 template hashes
// (ascii_runtime_measurements on kernels without per-bank lists) makes the
// Attester quote PCR 10 of the SHA-1 bank too, so that the list replays.
func TestAttesterSHA1IMAList(t *testing.T) {
	ctx := context.Background()
	tt := newTestTPM(t)
	fh := sha1.Sum([]byte("kura worker v1"))
	e := imaNGEntry(crypto.SHA1, "sha1", fh[:], "/usr/local/bin/kura-worker")
	if _, err := (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(10), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA1, Digest: e.templateHash}}},
	}).Execute(tt.tpm); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := newAttesterFor(t, tt, AttesterConfig{EventLogPath: writeTemp(t, dir, "empty", nil), IMAPath: writeTemp(t, dir, "ima", (&imaList{entries: []imaEntry{e}}).marshal())})
	b, err := a.Attest(ctx, [attestation.ReportDataSize]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(Config{AKs: []*rsa.PublicKey{a.ak.RSA}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Verify(ctx, b)
	if err != nil {
		t.Fatalf("Verify: %v; checks %+v", err, res.Checks)
	}
	vt := res.Claims["vtpm"].(map[string]any)
	if got := strings.Join(vt["replayed_pcrs"].([]string), " "); got != "sha1:10" || len(vt["events"].([]any)) != 1 {
		t.Errorf("replayed %s, events %v", got, vt["events"])
	}
}

// sizeLimited is a TPM that takes at most max bytes of qualifying data in
// TPM2_Quote, as a TPM without SHA-512 does, refusing more with
// TPM_RC_SIZE on parameter 1.
type sizeLimited struct {
	transport.TPM
	max int
}

func (s sizeLimited) Send(cmd []byte) ([]byte, error) {
	// TPM2_Quote: header (10 bytes), signHandle, authorization size and
	// area, then qualifyingData, a TPM2B_DATA.
	if len(cmd) > 18 && binary.BigEndian.Uint32(cmd[6:]) == uint32(tpm2.TPMCCQuote) {
		off := 18 + int(binary.BigEndian.Uint32(cmd[14:]))
		if int(binary.BigEndian.Uint16(cmd[off:])) > s.max {
			rsp := []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(rsp[6:], uint32(tpm2.TPMRCSize)|0x040|0x100)
			return rsp, nil
		}
	}
	return s.TPM.Send(cmd)
}

// TestAttesterQualifyingDataSize checks report_data on TPMs that take 50
// bytes of qualifying data (largest digest SHA-384) and 34 (SHA-256
// alone): the attester passes the first 48 or 32 bytes of kura's or a CoCo
// binding's report_data, and the verifier accepts that prefix; a TPM that
// takes fewer than 32 bytes cannot carry the binding.
func TestAttesterQualifyingDataSize(t *testing.T) {
	ctx := context.Background()
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{1}, 32), PublicKey: []byte(`{"crv":"P-256","kty":"EC","x":"AA","y":"AA"}`)}
	coco, err := rd.ReportDataFor(attestation.BindingCoCoKBS01)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max     int
		binding attestation.Binding
		want    int // bytes of extraData
	}{
		{50, attestation.BindingKura, 48},
		{34, attestation.BindingKura, 32},
		{50, attestation.BindingCoCoKBS01, 48},
		{34, attestation.BindingCoCoKBS01, 32},
	} {
		tt := newTestTPM(t)
		tt.tpm = sizeLimited{tt.tpm, tc.max}
		empty := writeTemp(t, t.TempDir(), "empty", nil) // no logs
		a := newAttesterFor(t, tt, AttesterConfig{EventLogPath: empty, IMAPath: empty})
		reportData := rd.ReportData()
		if tc.binding != attestation.BindingKura {
			reportData = coco
		}
		b, err := a.Attest(ctx, reportData)
		if err != nil {
			t.Fatalf("%d-byte TPM, binding %q: %v", tc.max, tc.binding, err)
		}
		b.RuntimeData, b.Binding = rd, tc.binding
		svc := newService(t, a.ak.RSA)
		rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce})
		if err != nil || checkStatus(rep, "binding") != attestation.Passed {
			t.Fatalf("%d-byte TPM, binding %q: Verify: %v; checks %+v", tc.max, tc.binding, err, rep.Checks)
		}
		if x := rep.Claims["vtpm"].(map[string]any)["extra_data"].(string); len(x) != 2*tc.want {
			t.Errorf("%d-byte TPM: extraData %s, want %d bytes", tc.max, x, tc.want)
		}
		// The same quote does not bind other runtime data.
		b.RuntimeData.Context = []byte("other")
		if _, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce}); err == nil {
			t.Errorf("%d-byte TPM, binding %q: a prefix bound other runtime data", tc.max, tc.binding)
		}
	}
	tt := newTestTPM(t)
	tt.tpm = sizeLimited{tt.tpm, 20}
	empty := writeTemp(t, t.TempDir(), "empty", nil)
	a := newAttesterFor(t, tt, AttesterConfig{EventLogPath: empty, IMAPath: empty})
	if _, err := a.Attest(ctx, rd.ReportData()); !errors.Is(err, attestation.ErrNoTEE) || !strings.Contains(err.Error(), "first 32 bytes") {
		t.Fatalf("a 20-byte TPM: %v, want ErrNoTEE", err)
	}
}

// TestAttesterPersistentAK quotes with a persistent key, and refuses a
// missing key and a key the verifier would refuse.
func TestAttesterPersistentAK(t *testing.T) {
	ctx := context.Background()
	tt := newTestTPM(t)
	persist := func(h tpm2.NamedHandle, at tpm2.TPMHandle) {
		t.Helper()
		if _, err := (tpm2.EvictControl{
			Auth: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}, ObjectHandle: h, PersistentHandle: at,
		}).Execute(tt.tpm); err != nil {
			t.Fatalf("EvictControl: %v", err)
		}
	}
	persist(tt.ak, 0x81000100)
	empty := writeTemp(t, t.TempDir(), "empty", nil) // no logs
	a := newAttesterFor(t, tt, AttesterConfig{AKHandle: 0x81000100, EventLogPath: empty, IMAPath: empty})
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{2}, 32)}
	b, err := a.Attest(ctx, rd.ReportData())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Evidence, tt.akPub) {
		t.Error("evidence is not the persistent key's TPMT_PUBLIC")
	}
	b.RuntimeData = rd
	if rep, err := newService(t, tt.akKey).Verify(ctx, b, verifier.Options{Freshness: verifier.ExpectedNonce, Nonce: rd.Nonce}); err != nil {
		t.Fatalf("Verify: %v; checks %+v", err, rep.Checks)
	}

	if _, err := NewAttester(AttesterConfig{Transport: tt.tpm, AKHandle: 0x81000200}); !errors.Is(err, attestation.ErrNoTEE) || !strings.Contains(err.Error(), "tpm2_evictcontrol") {
		t.Errorf("missing key: %v, want ErrNoTEE saying how to make one", err)
	}
	rsp, err := tpm2.CreatePrimary{
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
	persist(tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, 0x81000300)
	if _, err := NewAttester(AttesterConfig{Transport: tt.tpm, AKHandle: 0x81000300}); !errors.Is(err, attestation.ErrUntrustedRoot) || !strings.Contains(err.Error(), "restricted") {
		t.Errorf("unrestricted key: %v, want ErrUntrustedRoot naming restricted", err)
	}
}

// TestAttesterBanks checks that PCRs and banks the TPM does not have are
// refused when the Attester is made.
func TestAttesterBanks(t *testing.T) {
	tt := newTestTPM(t)
	if _, err := NewAttester(AttesterConfig{Transport: tt.tpm, PCRs: []int{7, 24}}); err == nil || !strings.Contains(err.Error(), "want 0 to 23") {
		t.Errorf("PCR 24: %v", err)
	}
	if _, err := NewAttester(AttesterConfig{Transport: tt.tpm, Banks: []tpm2.TPMAlgID{tpm2.TPMAlgSM3256}}); err == nil || !strings.Contains(err.Error(), "want SHA-1") {
		t.Errorf("SM3 bank: %v", err)
	}
	banks, err := tpmquote.AllocatedBanks(tt.tpm)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []tpm2.TPMAlgID{tpm2.TPMAlgSHA512, tpm2.TPMAlgSHA384, tpm2.TPMAlgSHA1} {
		if banks[alg] {
			continue
		}
		if _, err := NewAttester(AttesterConfig{Transport: tt.tpm, Banks: []tpm2.TPMAlgID{alg}}); !errors.Is(err, attestation.ErrNoTEE) || !strings.Contains(err.Error(), "PCR bank allocated") {
			t.Errorf("unallocated bank %v: %v", alg, err)
		}
		return
	}
	t.Log("this swtpm allocates every bank: the unallocated-bank error is not exercised")
}

// TestNewAttesterNoTPM checks that a machine without a TPM says so.
func TestNewAttesterNoTPM(t *testing.T) {
	dir := t.TempDir()
	for _, dev := range []string{filepath.Join(dir, "tpmrm0"), writeTemp(t, dir, "file", nil)} {
		if _, err := NewAttester(AttesterConfig{Device: dev}); !errors.Is(err, attestation.ErrNoTEE) {
			t.Errorf("device %s: %v, want ErrNoTEE", dev, err)
		}
	}
}

// TestTrimIMA checks trimming on lists of a few lines against quoted
// values.
func TestTrimIMA(t *testing.T) {
	line := func(pcr string, th []byte) string {
		return pcr + " " + hex.EncodeToString(th) + " ima-ng sha256:" + strings.Repeat("ab", 32) + " /f\n"
	}
	ext := func(v, d []byte) []byte { h := sha256.New(); h.Write(v); h.Write(d); return h.Sum(nil) }
	zero := make([]byte, 32)
	d1, d2, d3 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32), bytes.Repeat([]byte{3}, 32)
	ones := bytes.Repeat([]byte{0xff}, 32)
	list := line("10", d1) + line("11", d2) + line("10", zero) + line("10", d3)
	quote := func(vals map[int][]byte) func(tpm2.TPMAlgID, int) []byte {
		return func(bank tpm2.TPMAlgID, pcr int) []byte {
			if bank != tpm2.TPMAlgSHA256 {
				return nil
			}
			return vals[pcr]
		}
	}
	afterViolation := ext(ext(zero, d1), ones)
	for _, tc := range []struct {
		name    string
		list    string
		quoted  map[int][]byte
		want    string
		matched bool
	}{
		{"whole list", list, map[int][]byte{10: ext(afterViolation, d3), 11: ext(zero, d2)}, list, true},
		{"after the violation", list, map[int][]byte{10: afterViolation, 11: ext(zero, d2)}, line("10", d1) + line("11", d2) + line("10", zero), true},
		{"first line", list, map[int][]byte{10: ext(zero, d1), 11: zero}, line("10", d1), true},
		{"PCR 11 not quoted", list, map[int][]byte{10: ext(zero, d1)}, line("10", d1), true},
		{"nothing quoted", list, nil, list, true},
		{"nothing extended", list, map[int][]byte{10: zero}, "", true},
		{"no prefix", list, map[int][]byte{10: d1}, list, false},
		{"empty", "", map[int][]byte{10: d1}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, matched, err := trimIMA([]byte(tc.list), quote(tc.quoted))
			if err != nil || string(got) != tc.want || matched != tc.matched {
				t.Errorf("trimIMA = %q, %v, %v; want %q, %v", got, matched, err, tc.want, tc.matched)
			}
		})
	}
	for _, bad := range []string{"10 zz ima-ng x /f\n", "10 " + hex.EncodeToString(d1) + " ima-ng\n", "x " + hex.EncodeToString(d1) + " ima-ng a /f\n", line("10", d1)[:20], line("10", d1) + line("10", d1[:20])} {
		if _, _, err := trimIMA([]byte(bad), quote(nil)); err == nil {
			t.Errorf("trimIMA(%q) accepted", bad)
		}
	}
}

// FuzzScanIMA checks that scanIMA never panics and that what it accepts it
// reads whole, line by line.
func FuzzScanIMA(f *testing.F) {
	swtpm, err := os.ReadFile("testdata/swtpm/ascii_runtime_measurements")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(swtpm)
	f.Add([]byte("10 " + strings.Repeat("00", 20) + " ima aa /f\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		lines, _, err := scanIMA(data)
		if err != nil {
			return
		}
		end := 0
		for _, l := range lines {
			if l.end <= end || data[l.end-1] != '\n' {
				t.Fatalf("line ends at %d after %d", l.end, end)
			}
			end = l.end
		}
		if end != len(data) {
			t.Fatalf("lines end at %d of %d bytes", end, len(data))
		}
	})
}
