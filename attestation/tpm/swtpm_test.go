package tpm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/swtpm"
)

// testTPM is a swtpm with an attestation key and the logs of what the test
// extended.
type testTPM struct {
	t      *testing.T
	tpm    transport.TPM
	ak     tpm2.NamedHandle
	akPub  []byte // TPMT_PUBLIC
	akKey  *rsa.PublicKey
	log    *eventLog
	ima    *imaList
	banks  []tpm2.TPMAlgID
	quoted map[tpm2.TPMAlgID][]uint
}

func newTestTPM(t *testing.T) *testTPM {
	tt := &testTPM{t: t, tpm: swtpm.Start(t), banks: []tpm2.TPMAlgID{tpm2.TPMAlgSHA1, tpm2.TPMAlgSHA256}}
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
	}.Execute(tt.tpm)
	if err != nil {
		t.Fatalf("create AK: %v", err)
	}
	tt.ak = tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		t.Fatal(err)
	}
	tt.akPub = tpm2.Marshal(pub)
	ak, err := parseAK(tt.akPub)
	if err != nil {
		t.Fatal(err)
	}
	tt.akKey = ak.key
	tt.log = &eventLog{Header: specIDHeader(0x0004, 0x000B), Algs: []algSize{{Alg: 0x0004, Size: 20}, {Alg: 0x000B, Size: 32}}}
	return tt
}

// extend extends pcr in both banks with the hashes of data; record logs it.
func (tt *testTPM) extend(pcr int, typ uint32, data []byte, record bool) {
	tt.t.Helper()
	s1, s256 := sha1.Sum(data), sha256.Sum256(data)
	e := event{PCR: pcr, Type: typ, Data: data, Digests: []digest{{Alg: 0x0004, Value: s1[:]}, {Alg: 0x000B, Value: s256[:]}}}
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA1, Digest: s1[:]}, {HashAlg: tpm2.TPMAlgSHA256, Digest: s256[:]}}},
	}.Execute(tt.tpm)
	if err != nil {
		tt.t.Fatalf("extend PCR %d: %v", pcr, err)
	}
	if record {
		tt.log.Events = append(tt.log.Events, e)
	}
}

// measureFile adds an ima-ng entry (SHA-256 template hashes, as
// ascii_runtime_measurements_sha256) and extends PCR 10's SHA-256 bank.
func (tt *testTPM) measureFile(name string, content []byte) {
	tt.t.Helper()
	fh := sha256.Sum256(content)
	e := imaNGEntry(crypto.SHA256, "sha256", fh[:], name)
	if _, err := (tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(10), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: e.templateHash}}},
	}).Execute(tt.tpm); err != nil {
		tt.t.Fatalf("extend PCR 10: %v", err)
	}
	if tt.ima == nil {
		tt.ima = &imaList{bank: 0x000B}
	}
	tt.ima.entries = append(tt.ima.entries, e)
}

// quote quotes PCRs 0-9 of both banks and PCR 10 of SHA-256, with
// qualifying data, and returns a bundle with the logs.
func (tt *testTPM) quote(qualifying []byte) *attestation.Bundle {
	tt.t.Helper()
	sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgSHA1, PCRSelect: tpm2.PCClientCompatible.PCRs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9)},
		{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)},
	}}
	rsp, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: tt.ak.Handle, Name: tt.ak.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: qualifying},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      sel,
	}.Execute(tt.tpm)
	if err != nil {
		tt.t.Fatalf("quote: %v", err)
	}
	var pcrs [][]byte
	for _, s := range sel.PCRSelections {
		for i := range 24 {
			if s.PCRSelect[i/8]&(1<<(i%8)) == 0 {
				continue
			}
			r, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: s.Hash, PCRSelect: tpm2.PCClientCompatible.PCRs(uint(i))}}}}.Execute(tt.tpm)
			if err != nil || len(r.PCRValues.Digests) != 1 {
				tt.t.Fatalf("read PCR %d: %v", i, err)
			}
			pcrs = append(pcrs, r.PCRValues.Digests[0].Buffer)
		}
	}
	var imaLog []byte
	if tt.ima != nil {
		imaLog = tt.ima.marshal()
	}
	b, err := NewBundle(tt.akPub, rsp.Quoted.Bytes(), tpm2.Marshal(rsp.Signature), pcrs, tt.log.Marshal(), imaLog)
	if err != nil {
		tt.t.Fatal(err)
	}
	return b
}

// bootAndRun measures a boot chain and a worker binary.
func bootAndRun(tt *testTPM, worker []byte) {
	tt.extend(0, 0x80000008, []byte("firmware volume"), true)
	for pcr := range 8 {
		tt.extend(pcr, 0x4, []byte{0, 0, 0, 0}, true) // EV_SEPARATOR
	}
	tt.extend(4, 0x80000003, []byte("\\EFI\\BOOT\\BOOTX64.EFI"), true)
	tt.extend(8, 0xD, []byte("grub_cmd: linux /vmlinuz ima_policy=tcb"), true)
	tt.extend(9, 0xD, []byte("/boot/vmlinuz"), true)
	tt.measureFile("boot_aggregate", []byte("boot aggregate"))
	tt.measureFile("/usr/local/bin/kura-worker", worker)
}

func TestSWTPMQuote(t *testing.T) {
	tt := newTestTPM(t)
	bootAndRun(tt, []byte("kura worker v1"))
	rd := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{7}, 32)}
	want := rd.ReportData()
	b := tt.quote(want[:])

	v, err := NewVerifier(Config{AKs: []*rsa.PublicKey{tt.akKey}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := v.Verify(ctx, b)
	if err != nil {
		t.Fatalf("Verify: %v\nchecks: %+v", err, res.Checks)
	}
	if !bytes.Equal(res.ReportData, want[:]) {
		t.Errorf("ReportData = %x, want %x", res.ReportData, want)
	}
	vt := res.Claims["vtpm"].(map[string]any)
	events := vt["events"].([]any)
	var worker map[string]any
	for _, e := range events {
		if e.(map[string]any)["description"] == "/usr/local/bin/kura-worker" {
			worker = e.(map[string]any)
		}
	}
	wh := sha256.Sum256([]byte("kura worker v1"))
	if worker == nil || worker["digests"].(map[string]any)["sha256"] != hex.EncodeToString(wh[:]) || worker["pcr"] != 10 {
		t.Errorf("worker event = %v, want PCR 10 sha256 %x", worker, wh)
	}
	if n := len(events); n != 14 {
		t.Errorf("%d events reported, want 14 (12 TCG, 2 IMA)", n)
	}

	// The same evidence under other nonces, keys and values.
	other := attestation.RuntimeData{Nonce: bytes.Repeat([]byte{8}, 32)}
	if o := other.ReportData(); bytes.Equal(res.ReportData, o[:]) {
		t.Error("report data does not depend on the nonce")
	}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	wrongAK, _ := NewVerifier(Config{AKs: []*rsa.PublicKey{&otherKey.PublicKey}})
	if _, err := wrongAK.Verify(ctx, b); !errors.Is(err, attestation.ErrUntrustedRoot) {
		t.Errorf("wrong AK: %v, want ErrUntrustedRoot", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(b *attestation.Bundle)
		want   error
		msg    string
	}{
		{"tampered quote", func(b *attestation.Bundle) { b.VTPM.Quote[len(b.VTPM.Quote)-1] ^= 1 }, attestation.ErrBadSignature, "signature"},
		{"tampered signature", func(b *attestation.Bundle) { b.VTPM.Signature[10] ^= 1 }, attestation.ErrBadSignature, "signature"},
		{"pcr value", func(b *attestation.Bundle) { b.VTPM.PCRs[3][0] ^= 1 }, attestation.ErrBadSignature, "signed the digest"},
		{"event dropped from the log", func(b *attestation.Bundle) {
			l, _ := parseEventLog(b.VTPM.EventLog)
			l.Events = append(l.Events[:3:3], l.Events[4:]...)
			b.VTPM.EventLog = l.Marshal()
		}, attestation.ErrBinding, "PCR sha1:2"},
		{"separator data altered", func(b *attestation.Bundle) {
			l, _ := parseEventLog(b.VTPM.EventLog)
			l.Events[1].Data = []byte{0, 0, 0, 1}
			b.VTPM.EventLog = l.Marshal()
		}, attestation.ErrBinding, "event 2 (EV_SEPARATOR on PCR 0)"},
		{"file renamed in the ima list", func(b *attestation.Bundle) {
			b.VTPM.IMALog = bytes.Replace(b.VTPM.IMALog, []byte("kura-worker"), []byte("kura-workex"), 1)
		}, attestation.ErrMalformed, "template hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cloneBundle(b)
			tc.mutate(c)
			_, err := v.Verify(ctx, c)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %v naming %q", err, tc.want, tc.msg)
			}
		})
	}

	// Extend a PCR behind the verifier's back: the quote is genuine, the
	// log does not explain it.
	tt.extend(7, 0x80000001, []byte("SecureBoot=0"), false)
	b2 := tt.quote(want[:])
	_, err = v.Verify(ctx, b2)
	if !errors.Is(err, attestation.ErrBinding) || !strings.Contains(err.Error(), "PCR sha1:7") || !strings.Contains(err.Error(), "the 1 events") {
		t.Errorf("unlogged extend: %v, want ErrBinding naming PCR sha1:7 and its 1 logged event", err)
	}
}

func cloneBundle(b *attestation.Bundle) *attestation.Bundle {
	c := *b
	v := *b.VTPM
	v.Quote, v.Signature, v.EventLog, v.IMALog = bytes.Clone(v.Quote), bytes.Clone(v.Signature), bytes.Clone(v.EventLog), bytes.Clone(v.IMALog)
	v.PCRs = nil
	for _, p := range b.VTPM.PCRs {
		v.PCRs = append(v.PCRs, bytes.Clone(p))
	}
	c.VTPM = &v
	return &c
}
