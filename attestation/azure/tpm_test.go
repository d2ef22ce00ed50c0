package azure

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/kura-cc/kura/attestation"
)

// TestCapturedQuote verifies the captured vTPM quote with its own AK
// (akpub.pem): signature, extraData and PCR digest, and that tampering with
// any of them, or another key, fails with its specific error.
func TestCapturedQuote(t *testing.T) {
	attest, sig, pcrs, ak := captureQuote(t)
	q, err := parseTPMQuote(attest, sig)
	if err != nil {
		t.Fatal(err)
	}
	if string(q.extraData) != "challenge" || q.hash.String() != "SHA-256" || len(q.selection) != 1 || len(q.selection[0].indices) != 24 {
		t.Fatalf("extraData %q, hash %v, selection %+v", q.extraData, q.hash, q.selection)
	}
	if err := q.verifySignature(ak); err != nil {
		t.Fatal(err)
	}
	claims, err := q.checkPCRs(pcrs)
	if err != nil {
		t.Fatal(err)
	}
	if bank := claims["sha256"].(map[string]any); len(bank) != 24 || bank["0"] == "" {
		t.Errorf("PCR claims %v", claims)
	}

	t.Run("tampered quote", func(t *testing.T) {
		bad := bytes.Clone(attest)
		i := bytes.Index(bad, []byte("challenge"))
		bad[i] ^= 1
		q, err := parseTPMQuote(bad, sig)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.verifySignature(ak); !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("got %v, want ErrBadSignature", err)
		}
	})
	t.Run("tampered signature", func(t *testing.T) {
		bad := bytes.Clone(sig)
		bad[len(bad)-1] ^= 1
		q, _ := parseTPMQuote(attest, bad)
		if err := q.verifySignature(ak); !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("got %v, want ErrBadSignature", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		if err := q.verifySignature(&testKey().PublicKey); !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("got %v, want ErrBadSignature", err)
		}
	})
	t.Run("pcr value changed", func(t *testing.T) {
		bad := append([][]byte{}, pcrs...)
		bad[7] = bytes.Clone(bad[7])
		bad[7][0] ^= 1
		if _, err := q.checkPCRs(bad); !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("got %v, want ErrBadSignature", err)
		}
	})
	t.Run("pcrs reordered", func(t *testing.T) {
		bad := append([][]byte{}, pcrs...)
		bad[0], bad[1] = bad[1], bad[0]
		if _, err := q.checkPCRs(bad); !errors.Is(err, attestation.ErrBadSignature) {
			t.Fatalf("got %v, want ErrBadSignature", err)
		}
	})
	t.Run("pcr missing", func(t *testing.T) {
		if _, err := q.checkPCRs(pcrs[:23]); !errors.Is(err, attestation.ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})
	t.Run("pcr of the wrong size", func(t *testing.T) {
		bad := append([][]byte{}, pcrs...)
		bad[3] = bad[3][:20]
		if _, err := q.checkPCRs(bad); !errors.Is(err, attestation.ErrMalformed) {
			t.Fatalf("got %v, want ErrMalformed", err)
		}
	})
}

// TestQuoteSchemes signs synthetic quotes with each accepted scheme and
// hash, and checks the ones refused.
func TestQuoteSchemes(t *testing.T) {
	key := testKey()
	for _, s := range []struct {
		scheme, hash tpm2.TPMAlgID
	}{
		{tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA256}, {tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA384},
		{tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA512}, {tpm2.TPMAlgRSAPSS, tpm2.TPMAlgSHA256},
	} {
		attest, sig := makeQuote(t, quoteSpec{key: key, extraData: []byte("nonce"), pcrs: testPCRs()[:8], scheme: s.scheme, hash: s.hash})
		q, err := parseTPMQuote(attest, sig)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.verifySignature(&key.PublicKey); err != nil {
			t.Errorf("%s: %v", q.schemeName(), err)
		}
		if _, err := q.checkPCRs(testPCRs()[:8]); err != nil {
			t.Errorf("%s: %v", q.schemeName(), err)
		}
	}
	attest, sig := makeQuote(t, quoteSpec{key: key, pcrs: testPCRs()})
	refused := map[string][2][]byte{
		"sha1 signature":      {attest, rsaSignature(tpm2.TPMAlgRSASSA, tpm2.TPMAlgSHA1, make([]byte, 256))},
		"ecdsa signature":     {attest, tpm2.Marshal(&tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgECDSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{Hash: tpm2.TPMAlgSHA256})})},
		"trailing signature":  {attest, append(bytes.Clone(sig), 0)},
		"trailing attest":     {append(bytes.Clone(attest), 0), sig},
		"truncated attest":    {attest[:len(attest)-1], sig},
		"truncated signature": {attest, sig[:len(sig)-1]},
		"bad magic":           {append([]byte{0}, attest[1:]...), sig},
		"empty":               {nil, nil},
		"oversized attest":    {make([]byte, attestation.MaxTPMQuoteSize+1), sig},
		"oversized signature": {attest, make([]byte, attestation.MaxTPMSignatureSize+1)},
		"long extraData":      {quoteWith(t, func(a *tpm2.TPMSAttest) { a.ExtraData.Buffer = make([]byte, 65) }), sig},
		"certify, not a quote": {quoteWith(t, func(a *tpm2.TPMSAttest) {
			a.Type = tpm2.TPMSTAttestCertify
			a.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestCertify, &tpm2.TPMSCertifyInfo{})
		}), sig},
		"no pcr selected": {quoteWith(t, func(a *tpm2.TPMSAttest) {
			setSelection(a, tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA256, PCRSelect: []byte{0, 0, 0}})
		}), sig},
		"sm3 bank": {quoteWith(t, func(a *tpm2.TPMSAttest) {
			setSelection(a, tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSM3256, PCRSelect: []byte{1, 0, 0}})
		}), sig},
		"bank twice": {quoteWith(t, func(a *tpm2.TPMSAttest) {
			setSelection(a, tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA256, PCRSelect: []byte{1}}, tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA256, PCRSelect: []byte{2}})
		}), sig},
		"huge select": {quoteWith(t, func(a *tpm2.TPMSAttest) {
			setSelection(a, tpm2.TPMSPCRSelection{Hash: tpm2.TPMAlgSHA256, PCRSelect: make([]byte, 9)})
		}), sig},
	}
	for name, in := range refused {
		t.Run(name, func(t *testing.T) {
			if _, err := parseTPMQuote(in[0], in[1]); !errors.Is(err, attestation.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// quoteWith returns a synthetic TPMS_ATTEST changed by f.
func quoteWith(t *testing.T, f func(a *tpm2.TPMSAttest)) []byte {
	t.Helper()
	attest, _ := makeQuote(t, quoteSpec{key: testKey(), pcrs: testPCRs()})
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
	if err != nil {
		t.Fatal(err)
	}
	f(a)
	return tpm2.Marshal(a)
}

func setSelection(a *tpm2.TPMSAttest, sels ...tpm2.TPMSPCRSelection) {
	a.Attested = tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
		PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: sels},
		PCRDigest: tpm2.TPM2BDigest{Buffer: make([]byte, 32)},
	})
}
