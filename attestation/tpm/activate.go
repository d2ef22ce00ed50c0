package tpm

import (
	"bytes"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/internal/tpmquote"
)

// EKCertIndexRSA is the NV index where TPM manufacturers store the
// certificate of the RSA-2048 endorsement key of the standard template (TCG
// EK Credential Profile, "RSA 2048 EK Certificate").
const EKCertIndexRSA tpm2.TPMHandle = 0x01c00002

// nvChunk is how much of an NV index one TPM2_NV_Read asks for: less than
// any TPM's MAX_NV_BUFFER_SIZE.
const nvChunk = 512

// maxEKCertSize bounds the EK certificate read from NV.
const maxEKCertSize = 8 << 10

// EKCertificate reads the RSA EK certificate (DER) the TPM's manufacturer
// stored at NV index EKCertIndexRSA, without the padding some
// manufacturers leave after it. The index is read with its own
// authorization (empty) when it allows that, else the owner's (empty).
func (a *Attester) EKCertificate() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm attester: closed")
	}
	data, err := readNV(a.tpm, EKCertIndexRSA, maxEKCertSize)
	if err != nil {
		return nil, fmt.Errorf("tpm attester: no EK certificate at NV index %#08x (%w): give the TPM manufacturer's certificate of the RSA endorsement key as a file",
			uint32(EKCertIndexRSA), err)
	}
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(data, &raw)
	if err != nil {
		return nil, fmt.Errorf("%w: tpm attester: the EK certificate at NV index %#08x is not DER: %v", attestation.ErrMalformed, uint32(EKCertIndexRSA), err)
	}
	if len(bytes.Trim(rest, "\x00\xff")) > 0 {
		return nil, fmt.Errorf("%w: tpm attester: the EK certificate at NV index %#08x has %d bytes after its DER that are not padding", attestation.ErrMalformed, uint32(EKCertIndexRSA), len(rest))
	}
	return data[:len(data)-len(rest)], nil
}

// readNV reads the whole NV index idx, of at most limit bytes.
func readNV(t transport.TPM, idx tpm2.TPMHandle, limit int) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(t)
	if err != nil {
		return nil, err
	}
	nv, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	size := int(nv.DataSize)
	if size == 0 || size > limit {
		return nil, fmt.Errorf("the index holds %d bytes, want 1 to %d", size, limit)
	}
	auth := tpm2.AuthHandle{Handle: idx, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)}
	if !nv.Attributes.AuthRead {
		auth = tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	}
	out := make([]byte, 0, size)
	for len(out) < size {
		n := min(nvChunk, size-len(out))
		rsp, err := tpm2.NVRead{AuthHandle: auth, NVIndex: tpm2.NamedHandle{Handle: idx, Name: pub.NVName}, Size: uint16(n), Offset: uint16(len(out))}.Execute(t)
		if err != nil {
			return nil, err
		}
		if len(rsp.Data.Buffer) != n {
			return nil, fmt.Errorf("TPM2_NV_Read gave %d bytes, want %d", len(rsp.Data.Buffer), n)
		}
		out = append(out, rsp.Data.Buffer...)
	}
	return out, nil
}

// AttestationKeyPublic returns the attestation key's TPMT_PUBLIC, creating
// the key if need be: what an enrolment sends, since the credential is
// bound to the key's name, the hash of that structure.
func (a *Attester) AttestationKeyPublic() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm attester: closed")
	}
	k, err := a.key()
	if err != nil {
		return nil, err
	}
	return bytes.Clone(k.Public), nil
}

// EndorsementKey returns the public key of the TPM's RSA endorsement key:
// the endorsement hierarchy's primary key from the TCG's standard RSA-2048
// EK template, the key EKCertificate's certificate certifies.
func (a *Attester) EndorsementKey() (*rsa.PublicKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm attester: closed")
	}
	ek, err := a.createEK()
	if err != nil {
		return nil, err
	}
	defer tpm2.FlushContext{FlushHandle: ek.Handle}.Execute(a.tpm)
	return ek.RSA, nil
}

// createEK creates the RSA endorsement key as a transient primary key. The
// caller flushes it. a.mu is held.
func (a *Attester) createEK() (*tpmquote.Key, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(tpm2.RSAEKTemplate),
	}.Execute(a.tpm)
	if err != nil {
		return nil, fmt.Errorf("%w: tpm attester: creating the endorsement key (the standard RSA-2048 EK template's primary key): %v; "+
			"the endorsement hierarchy may have a password", attestation.ErrNoTEE, err)
	}
	k, err := tpmquote.KeyOf(rsp.ObjectHandle, rsp.Name, rsp.OutPublic)
	if err != nil {
		tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(a.tpm)
		return nil, fmt.Errorf("tpm attester: %w", err)
	}
	return k, nil
}

// ActivateCredential recovers the secret of a credential that a privacy CA
// made for this TPM's RSA endorsement key and the attestation key
// (TPM2_MakeCredential): it creates the EK as a transient primary key and
// runs TPM2_ActivateCredential with the attestation key and the EK, whose
// policy a PolicySecret(TPM_RH_ENDORSEMENT) session satisfies. credBlob is
// the credential's TPMS_ID_OBJECT, encSecret its encrypted seed (each
// without the TPM2B size). The TPM refuses a credential made for another
// EK or another key: that is ErrActivation.
func (a *Attester) ActivateCredential(credBlob, encSecret []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm attester: closed")
	}
	ak, err := a.key()
	if err != nil {
		return nil, err
	}
	ek, err := a.createEK()
	if err != nil {
		return nil, err
	}
	defer tpm2.FlushContext{FlushHandle: ek.Handle}.Execute(a.tpm)
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: ak.Handle, Name: ak.Name, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle:      tpm2.AuthHandle{Handle: ek.Handle, Name: ek.Name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, ekPolicy)},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: credBlob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encSecret},
	}.Execute(a.tpm)
	var rc tpm2.TPMRC
	if errors.As(err, &rc) {
		return nil, fmt.Errorf("%w: the TPM refused the credential (%v): it was not made for this TPM's endorsement key and the attestation key at %#08x",
			ErrActivation, err, uint32(ak.Handle))
	}
	if err != nil {
		return nil, fmt.Errorf("tpm attester: TPM2_ActivateCredential: %w", err)
	}
	return rsp.CertInfo.Buffer, nil
}

// ekPolicy satisfies the standard EK template's policy,
// TPM2_PolicySecret(TPM_RH_ENDORSEMENT), with the endorsement hierarchy's
// empty password.
func ekPolicy(t transport.TPM, session tpm2.TPMISHPolicy, nonceTPM tpm2.TPM2BNonce) error {
	_, err := tpm2.PolicySecret{
		AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		PolicySession: session,
		NonceTPM:      nonceTPM,
	}.Execute(t)
	return err
}
