// Package tpmquote takes TPM 2.0 quotes for kura's attesters
// (attestation/tpm for tee tpm, attestation/azure for the Azure vTPM
// TEEs): it opens the TPM, reads an attestation key's public area, asks for
// a TPM2_Quote whose qualifying data is report_data as docs/spec/
// attestation.md §3 binds it, and reads the quoted PCR values back in the
// quote's selection order, checked against the quote's pcrDigest.
//
// # Security model
//
// This package produces evidence; no verifier trusts anything it does. Its
// checks (the PCR values hash to the quote's pcrDigest, the qualifying data
// is report_data left-aligned) only keep an attester from shipping
// evidence that cannot verify. The TPM and its driver are the attester's:
// a hostile one can make quotes fail, not make them verify.
package tpmquote

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"

	"github.com/kura-cc/kura/attestation"
)

// DefaultDevice is the Linux kernel's TPM resource manager: it flushes the
// transient objects a process loaded when the process closes it.
const DefaultDevice = "/dev/tpmrm0"

// numPCRs is the number of PCRs in a PC Client TPM's bank.
const numPCRs = 24

// attempts bounds how often Take quotes again because a PCR changed
// between the quote and reading it back.
const attempts = 3

// Open opens the TPM at path: a character device (/dev/tpmrm0, /dev/tpm0)
// or a TPM emulator's Unix socket (swtpm socket --server type=unixio). A
// path that does not exist, or that this process may not open, gives an
// error wrapping attestation.ErrNoTEE that says what to do.
func Open(path string) (transport.TPMCloser, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: no TPM at %s: this machine has no TPM 2.0, or its driver (tpm_crb, tpm_tis) is not loaded", attestation.ErrNoTEE, path)
	case err != nil:
		return nil, fmt.Errorf("%w: TPM %s: %v", attestation.ErrNoTEE, path, err)
	case fi.Mode()&fs.ModeSocket != 0:
		return linuxudstpm.Open(path)
	}
	t, err := linuxtpm.Open(path)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: TPM %s: permission denied: run as root or as a member of the group that owns it (usually tss)", attestation.ErrNoTEE, path)
	case err != nil:
		return nil, fmt.Errorf("%w: TPM %s: %v", attestation.ErrNoTEE, path, err)
	}
	return t, nil
}

// Key is an attestation key loaded in the TPM.
type Key struct {
	Handle tpm2.TPMHandle
	Name   tpm2.TPM2BName
	// Public is the key's TPMT_PUBLIC as the TPM returned it.
	Public []byte
	// RSA is the public key, for an RSA key; nil for any other.
	RSA *rsa.PublicKey
}

// ReadKey reads the public area of the key at h, a persistent handle or a
// loaded transient one.
func ReadKey(t transport.TPM, h tpm2.TPMHandle) (*Key, error) {
	rsp, err := tpm2.ReadPublic{ObjectHandle: h}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("reading the public area of the key at %#08x: %w", uint32(h), err)
	}
	return KeyOf(h, rsp.Name, rsp.OutPublic)
}

// KeyOf returns the Key at h whose name and public area a command such as
// TPM2_ReadPublic or TPM2_CreatePrimary returned.
func KeyOf(h tpm2.TPMHandle, name tpm2.TPM2BName, public tpm2.TPM2BPublic) (*Key, error) {
	pub, err := public.Contents()
	if err != nil {
		return nil, fmt.Errorf("the public area of the key at %#08x: %w", uint32(h), err)
	}
	k := &Key{Handle: h, Name: name, Public: bytes.Clone(public.Bytes())}
	if pub.Type == tpm2.TPMAlgRSA {
		parms, err := pub.Parameters.RSADetail()
		if err != nil {
			return nil, fmt.Errorf("the key at %#08x: %w", uint32(h), err)
		}
		unique, err := pub.Unique.RSA()
		if err != nil {
			return nil, fmt.Errorf("the key at %#08x: %w", uint32(h), err)
		}
		if k.RSA, err = tpm2.RSAPub(parms, unique); err != nil {
			return nil, fmt.Errorf("the key at %#08x: %w", uint32(h), err)
		}
	}
	return k, nil
}

// AllocatedBanks returns the PCR banks the TPM has allocated PCRs in.
func AllocatedBanks(t transport.TPM) (map[tpm2.TPMAlgID]bool, error) {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, PropertyCount: 1}.Execute(t)
	if err != nil {
		return nil, fmt.Errorf("reading the TPM's PCR banks: %w", err)
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, fmt.Errorf("reading the TPM's PCR banks: %w", err)
	}
	out := map[tpm2.TPMAlgID]bool{}
	for _, s := range sel.PCRSelections {
		if slices.ContainsFunc(s.PCRSelect, func(b byte) bool { return b != 0 }) {
			out[tpm2.TPMAlgID(s.Hash)] = true
		}
	}
	return out, nil
}

// BankSelection is the selection of pcrs (0 to 23) in one bank.
func BankSelection(bank tpm2.TPMAlgID, pcrs []int) tpm2.TPMSPCRSelection {
	sel := make([]byte, numPCRs/8)
	for _, p := range pcrs {
		if p >= 0 && p < numPCRs {
			sel[p/8] |= 1 << (p % 8)
		}
	}
	return tpm2.TPMSPCRSelection{Hash: bank, PCRSelect: sel}
}

// Quote is a TPM2_Quote and the values of the PCRs it covers.
type Quote struct {
	// Attest is the TPMS_ATTEST the key signed.
	Attest []byte
	// Signature is its TPMT_SIGNATURE.
	Signature []byte
	// PCRs are the quoted PCRs' values in the quote's selection order:
	// bank by bank, PCR index ascending within a bank.
	PCRs [][]byte
	// ExtraData is the qualifying data the TPM signed.
	ExtraData []byte

	values map[pcrKey][]byte
}

type pcrKey struct {
	bank tpm2.TPMAlgID
	pcr  int
}

// Value returns the quoted value of pcr in bank, or nil when the quote
// does not cover it.
func (q *Quote) Value(bank tpm2.TPMAlgID, pcr int) []byte { return q.values[pcrKey{bank, pcr}] }

// Take asks the TPM for a quote by key over sel, with reportData as
// qualifying data, and reads the quoted PCRs back; when a PCR changed in
// between (their hash is not the quote's pcrDigest) it quotes again, at
// most three times.
//
// Take passes all 64 bytes of report_data when the TPM takes them. A TPM
// takes no more qualifying data than a TPMT_HA holds (2 bytes and its
// largest digest: 66 bytes with SHA-512, 50 with SHA-384, 34 with SHA-256
// alone); when it refuses 64 bytes, Take passes the first 48, then the
// first 32. The tpm verifier accepts any prefix of report_data of at least
// 32 bytes, zero-padded (docs/spec/attestation.md §3); the Azure vTPM
// takes all 64. A TPM that refuses 32 bytes fails with an error wrapping
// attestation.ErrNoTEE.
func Take(ctx context.Context, t transport.TPM, key *Key, reportData [attestation.ReportDataSize]byte, sel tpm2.TPMLPCRSelection) (*Quote, error) {
	extra := reportData[:]
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rsp, err := tpm2.Quote{
			SignHandle:     tpm2.AuthHandle{Handle: key.Handle, Name: key.Name, Auth: tpm2.PasswordAuth(nil)},
			QualifyingData: tpm2.TPM2BData{Buffer: extra},
			InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
			PCRSelect:      sel,
		}.Execute(t)
		if errors.Is(err, tpm2.TPMRCSize) && len(extra) > attestation.MinQuoteReportData {
			extra = extra[:max(len(extra)-16, attestation.MinQuoteReportData)] // 64, then 48, then 32 bytes
			attempt--
			continue
		}
		if errors.Is(err, tpm2.TPMRCSize) {
			return nil, fmt.Errorf("%w: the TPM refused even the first %d bytes of report_data as the quote's qualifying data (%v): it cannot carry the binding", attestation.ErrNoTEE, attestation.MinQuoteReportData, err)
		}
		if err != nil {
			return nil, fmt.Errorf("TPM2_Quote by the key at %#08x: %w", uint32(key.Handle), err)
		}
		q, err := readBack(t, rsp, extra)
		if err == nil {
			return q, nil
		}
		if errors.Is(err, errPCRsChanged) && attempt == attempts {
			return nil, fmt.Errorf("%w between the quote and reading them back, %d times in a row: something extends them continuously; try again", err, attempts)
		}
		if !errors.Is(err, errPCRsChanged) {
			return nil, err
		}
	}
}

// errPCRsChanged means a PCR changed between the quote and reading it.
var errPCRsChanged = errors.New("the quoted PCRs changed")

// readBack parses the quote, reads the PCRs it selected and checks that
// they hash to its pcrDigest.
func readBack(t transport.TPM, rsp *tpm2.QuoteResponse, extra []byte) (*Quote, error) {
	attest, err := rsp.Quoted.Contents()
	if err != nil {
		return nil, fmt.Errorf("the TPM's quote: %w", err)
	}
	info, err := attest.Attested.Quote()
	if err != nil {
		return nil, fmt.Errorf("the TPM's quote: %w", err)
	}
	if !bytes.Equal(attest.ExtraData.Buffer, extra) {
		return nil, fmt.Errorf("the TPM's quote has extraData %x, not the qualifying data %x it was given", attest.ExtraData.Buffer, extra)
	}
	hashAlg, err := signatureHash(&rsp.Signature)
	if err != nil {
		return nil, err
	}
	h, err := hashAlg.Hash()
	if err != nil {
		return nil, fmt.Errorf("the TPM's quote signature: %w", err)
	}
	q := &Quote{Attest: bytes.Clone(rsp.Quoted.Bytes()), Signature: tpm2.Marshal(rsp.Signature), ExtraData: bytes.Clone(extra), values: map[pcrKey][]byte{}}
	var want []pcrKey
	for _, s := range info.PCRSelect.PCRSelections {
		for i := range 8 * len(s.PCRSelect) {
			if s.PCRSelect[i/8]&(1<<(i%8)) != 0 {
				want = append(want, pcrKey{tpm2.TPMAlgID(s.Hash), i})
			}
		}
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("the TPM's quote covers no PCR: are the requested banks allocated?")
	}
	if err := readPCRs(t, want, q.values); err != nil {
		return nil, err
	}
	d := h.New()
	for _, k := range want {
		q.PCRs = append(q.PCRs, q.values[k])
		d.Write(q.values[k])
	}
	if !bytes.Equal(d.Sum(nil), info.PCRDigest.Buffer) {
		return nil, errPCRsChanged
	}
	return q, nil
}

// signatureHash returns the hash algorithm of a quote's signature, which
// is also that of its pcrDigest.
func signatureHash(sig *tpm2.TPMTSignature) (tpm2.TPMIAlgHash, error) {
	switch sig.SigAlg {
	case tpm2.TPMAlgRSASSA:
		s, err := sig.Signature.RSASSA()
		if err != nil {
			return 0, err
		}
		return s.Hash, nil
	case tpm2.TPMAlgRSAPSS:
		s, err := sig.Signature.RSAPSS()
		if err != nil {
			return 0, err
		}
		return s.Hash, nil
	case tpm2.TPMAlgECDSA:
		s, err := sig.Signature.ECDSA()
		if err != nil {
			return 0, err
		}
		return s.Hash, nil
	}
	return 0, fmt.Errorf("the TPM's quote has a signature of algorithm %#04x: the key is not an RSA or ECDSA signing key", uint16(sig.SigAlg))
}

// readPCRs reads the PCRs want into values. TPM2_PCR_Read returns at most
// eight values a call (a TPML_DIGEST) and says which, so it asks again for
// the rest.
func readPCRs(t transport.TPM, want []pcrKey, values map[pcrKey][]byte) error {
	wanted := map[pcrKey]bool{}
	for _, k := range want {
		wanted[k] = true
	}
	for len(values) < len(want) {
		var sel tpm2.TPMLPCRSelection
		for _, k := range want {
			if _, ok := values[k]; ok {
				continue
			}
			i := slices.IndexFunc(sel.PCRSelections, func(s tpm2.TPMSPCRSelection) bool { return tpm2.TPMAlgID(s.Hash) == k.bank })
			if i < 0 {
				sel.PCRSelections = append(sel.PCRSelections, BankSelection(k.bank, nil))
				i = len(sel.PCRSelections) - 1
			}
			sel.PCRSelections[i].PCRSelect[k.pcr/8] |= 1 << (k.pcr % 8)
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: sel}.Execute(t)
		if err != nil {
			return fmt.Errorf("reading the quoted PCRs: %w", err)
		}
		n, got := 0, 0
		for _, s := range rsp.PCRSelectionOut.PCRSelections {
			for i := range 8 * len(s.PCRSelect) {
				if s.PCRSelect[i/8]&(1<<(i%8)) == 0 {
					continue
				}
				if n >= len(rsp.PCRValues.Digests) {
					return fmt.Errorf("reading the quoted PCRs: the TPM selected more PCRs than it returned values")
				}
				k := pcrKey{tpm2.TPMAlgID(s.Hash), i}
				if _, ok := values[k]; !ok && wanted[k] {
					values[k] = bytes.Clone(rsp.PCRValues.Digests[n].Buffer)
					got++
				}
				n++
			}
		}
		if got == 0 {
			return fmt.Errorf("reading the quoted PCRs: the TPM returned none of the %d still wanted", len(want)-len(values))
		}
	}
	return nil
}
