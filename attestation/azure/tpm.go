package azure

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/google/go-tpm/tpm2"

	"github.com/kura-cc/kura/attestation"
)

// Bounds on a quote's PCR selection: TPMs have 24 PCRs (3 select bytes) per
// bank and a handful of banks.
const (
	maxSelections = 8
	maxSelectSize = 8
)

// tpmQuote is a parsed TPM2_Quote: the TPMS_ATTEST the key signed and its
// TPMT_SIGNATURE. Nothing in it is verified.
type tpmQuote struct {
	attest    []byte // the signed bytes, exactly as given
	extraData []byte
	signer    []byte // qualifiedSigner, the TPM name of the key
	firmware  uint64
	selection []pcrBank
	pcrDigest []byte
	scheme    tpm2.TPMAlgID // TPMAlgRSASSA or TPMAlgRSAPSS
	hash      crypto.Hash
	hashName  string
	sig       []byte
}

// pcrBank is one TPMS_PCR_SELECTION: a bank and the PCRs selected in it,
// in ascending order, which is the order the TPM hashes their values in.
type pcrBank struct {
	name    string // "sha1", "sha256", "sha384", "sha512"
	size    int    // digest size
	indices []int
}

// hashNames names the hash algorithms a quote may use, for PCR banks and
// signatures.
var hashNames = map[tpm2.TPMAlgID]string{
	tpm2.TPMAlgSHA1: "sha1", tpm2.TPMAlgSHA256: "sha256", tpm2.TPMAlgSHA384: "sha384", tpm2.TPMAlgSHA512: "sha512",
}

// parseTPMQuote parses a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE and an RSA
// TPMT_SIGNATURE (RSASSA or RSAPSS, SHA-256, SHA-384 or SHA-512). Each
// must be exactly one structure: go-tpm re-encodes what it read and the
// bytes must be the input.
func parseTPMQuote(attest, signature []byte) (q *tpmQuote, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: tpm quote: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
	}
	switch {
	case len(attest) == 0 || len(attest) > attestation.MaxTPMQuoteSize:
		return nil, bad("TPMS_ATTEST is %d bytes, want 1 to %d", len(attest), attestation.MaxTPMQuoteSize)
	case len(signature) == 0 || len(signature) > attestation.MaxTPMSignatureSize:
		return nil, bad("TPMT_SIGNATURE is %d bytes, want 1 to %d", len(signature), attestation.MaxTPMSignatureSize)
	}
	// go-tpm unmarshals by reflection; a panic in it on hostile bytes
	// must not take the verifier down.
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, bad("parser panicked: %v", r)
		}
	}()
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
	if err != nil {
		return nil, bad("TPMS_ATTEST: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(a), attest) {
		return nil, bad("TPMS_ATTEST has trailing or non-canonical bytes")
	}
	if err := a.Magic.Check(); err != nil {
		return nil, bad("%v", err)
	}
	if a.Type != tpm2.TPMSTAttestQuote {
		return nil, bad("attestation type %#04x, want TPM_ST_ATTEST_QUOTE (%#04x)", uint16(a.Type), uint16(tpm2.TPMSTAttestQuote))
	}
	info, err := a.Attested.Quote()
	if err != nil {
		return nil, bad("%v", err)
	}
	q = &tpmQuote{
		attest:    bytes.Clone(attest),
		extraData: bytes.Clone(a.ExtraData.Buffer),
		signer:    bytes.Clone(a.QualifiedSigner.Buffer),
		firmware:  a.FirmwareVersion,
		pcrDigest: bytes.Clone(info.PCRDigest.Buffer),
	}
	if len(q.extraData) > attestation.ReportDataSize {
		return nil, bad("extraData is %d bytes, more than report_data's %d", len(q.extraData), attestation.ReportDataSize)
	}
	sels := info.PCRSelect.PCRSelections
	if len(sels) == 0 || len(sels) > maxSelections {
		return nil, bad("%d PCR selections, want 1 to %d", len(sels), maxSelections)
	}
	total := 0
	seen := map[tpm2.TPMAlgID]bool{}
	for _, s := range sels {
		name, ok := hashNames[s.Hash]
		if !ok {
			return nil, bad("PCR bank of hash algorithm %#04x", uint16(s.Hash))
		}
		if seen[s.Hash] {
			return nil, bad("PCR bank %s selected twice", name)
		}
		seen[s.Hash] = true
		h, _ := s.Hash.Hash()
		if len(s.PCRSelect) > maxSelectSize {
			return nil, bad("PCR select of %d bytes, limit is %d", len(s.PCRSelect), maxSelectSize)
		}
		bank := pcrBank{name: name, size: h.Size()}
		for i := range 8 * len(s.PCRSelect) {
			if s.PCRSelect[i/8]&(1<<(i%8)) != 0 {
				bank.indices = append(bank.indices, i)
			}
		}
		total += len(bank.indices)
		q.selection = append(q.selection, bank)
	}
	if total == 0 {
		return nil, bad("the quote selects no PCR")
	}

	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](signature)
	if err != nil {
		return nil, bad("TPMT_SIGNATURE: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(sig), signature) {
		return nil, bad("TPMT_SIGNATURE has trailing or non-canonical bytes")
	}
	var rsaSig *tpm2.TPMSSignatureRSA
	switch sig.SigAlg {
	case tpm2.TPMAlgRSASSA:
		rsaSig, err = sig.Signature.RSASSA()
	case tpm2.TPMAlgRSAPSS:
		rsaSig, err = sig.Signature.RSAPSS()
	default:
		return nil, bad("signature algorithm %#04x, want RSASSA (%#04x) or RSAPSS (%#04x): the attestation key is RSA",
			uint16(sig.SigAlg), uint16(tpm2.TPMAlgRSASSA), uint16(tpm2.TPMAlgRSAPSS))
	}
	if err != nil {
		return nil, bad("%v", err)
	}
	if rsaSig.Hash == tpm2.TPMAlgSHA1 || hashNames[rsaSig.Hash] == "" {
		return nil, bad("signature hash algorithm %#04x, want SHA-256, SHA-384 or SHA-512", uint16(rsaSig.Hash))
	}
	q.scheme, q.hashName, q.sig = sig.SigAlg, hashNames[rsaSig.Hash], bytes.Clone(rsaSig.Sig.Buffer)
	q.hash, _ = rsaSig.Hash.Hash()
	return q, nil
}

// schemeName names the signature scheme, e.g. "RSASSA-PKCS1-v1_5 SHA-256".
func (q *tpmQuote) schemeName() string {
	s := "RSASSA-PKCS1-v1_5"
	if q.scheme == tpm2.TPMAlgRSAPSS {
		s = "RSASSA-PSS"
	}
	return s + " " + q.hash.String()
}

// verifySignature checks the quote's signature over TPMS_ATTEST with the
// attestation key.
func (q *tpmQuote) verifySignature(ak *rsa.PublicKey) error {
	h := q.hash.New()
	h.Write(q.attest)
	digest := h.Sum(nil)
	var err error
	if q.scheme == tpm2.TPMAlgRSAPSS {
		err = rsa.VerifyPSS(ak, q.hash, digest, q.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	} else {
		err = rsa.VerifyPKCS1v15(ak, q.hash, digest, q.sig)
	}
	if err != nil {
		return fmt.Errorf("%w: the TPM quote's %s signature does not verify with the attestation key", attestation.ErrBadSignature, q.schemeName())
	}
	return nil
}

// checkPCRs checks that values are the quoted PCRs' values: one per
// selected PCR, of its bank's digest size, whose concatenation hashes (with
// the signature's hash algorithm, as TPM2_Quote does) to the quote's
// pcrDigest. It returns them as claims: bank name → PCR index → hex.
func (q *tpmQuote) checkPCRs(values [][]byte) (map[string]any, error) {
	total := 0
	for _, b := range q.selection {
		total += len(b.indices)
	}
	if len(values) != total {
		return nil, fmt.Errorf("%w: %d PCR values for the %d PCRs the quote selects", attestation.ErrMalformed, len(values), total)
	}
	h := q.hash.New()
	banks := map[string]any{}
	i := 0
	for _, b := range q.selection {
		bank := map[string]any{}
		banks[b.name] = bank
		for _, idx := range b.indices {
			v := values[i]
			if len(v) != b.size {
				return nil, fmt.Errorf("%w: the value of PCR %s:%d is %d bytes, want %d", attestation.ErrMalformed, b.name, idx, len(v), b.size)
			}
			h.Write(v)
			bank[strconv.Itoa(idx)] = hex.EncodeToString(v)
			i++
		}
	}
	if got := h.Sum(nil); !bytes.Equal(got, q.pcrDigest) {
		return nil, fmt.Errorf("%w: the PCR values hash to %x, but the quote signed the digest %x", attestation.ErrBadSignature, got, q.pcrDigest)
	}
	return banks, nil
}

// quoteLen returns the length of the TPMS_ATTEST at the start of data, for
// files that hold it followed by its TPMT_SIGNATURE.
func quoteLen(data []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("%w: tpm quote: parser panicked: %v", attestation.ErrMalformed, r)
		}
	}()
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](data)
	if err != nil {
		return 0, fmt.Errorf("%w: tpm quote: TPMS_ATTEST: %v", attestation.ErrMalformed, err)
	}
	m := tpm2.Marshal(a)
	if len(m) > len(data) || !bytes.Equal(m, data[:len(m)]) {
		return 0, fmt.Errorf("%w: tpm quote: the file does not begin with a well-formed TPMS_ATTEST", attestation.ErrMalformed)
	}
	return len(m), nil
}
