package tpm

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/google/go-tpm/tpm2"

	"github.com/kura-cc/kura/attestation"
)

// maxAKFile bounds a file of pinned attestation keys.
const maxAKFile = 1 << 20

// LoadAKs reads the attestation keys pinned in a PEM file: one or more
// "PUBLIC KEY" blocks (PKIX), each an RSA key (tpm2_createak -f pem, or
// tpm2_readpublic -f pem, writes one).
func LoadAKs(path string) ([]*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tpm attestation keys: %w", err)
	}
	if len(data) > maxAKFile {
		return nil, fmt.Errorf("tpm attestation keys %s: %d bytes, limit is %d", path, len(data), maxAKFile)
	}
	var keys []*rsa.PublicKey
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("tpm attestation keys %s: PEM block %q, want PUBLIC KEY", path, block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tpm attestation keys %s: %w", path, err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("tpm attestation keys %s: %T, want an RSA key (kura verifies RSASSA and RSAPSS quotes)", path, k)
		}
		keys = append(keys, rk)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("tpm attestation keys %s: no PEM PUBLIC KEY block", path)
	}
	return keys, nil
}

// akPublic is the attestation key a bundle names: from a TPMT_PUBLIC, with
// its attributes, or from PKIX DER, without.
type akPublic struct {
	key    *rsa.PublicKey
	public *tpm2.TPMTPublic // nil for PKIX DER
}

// parseAK parses a bundle's evidence: the AK's TPMT_PUBLIC (as
// TPM2_ReadPublic returns it) or its PKIX DER SubjectPublicKeyInfo.
func parseAK(data []byte) (ak *akPublic, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: attestation key: %s", attestation.ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(data) == 0 || len(data) > 4096 {
		return nil, bad("%d bytes, want 1 to 4096", len(data))
	}
	if data[0] == 0x30 { // a DER SEQUENCE: PKIX
		k, err := x509.ParsePKIXPublicKey(data)
		if err != nil {
			return nil, bad("%v", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, bad("%T, want RSA", k)
		}
		return &akPublic{key: rk}, nil
	}
	defer func() {
		if r := recover(); r != nil {
			ak, err = nil, bad("TPMT_PUBLIC parser panicked: %v", r)
		}
	}()
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](data)
	if err != nil {
		return nil, bad("TPMT_PUBLIC: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(pub), data) {
		return nil, bad("TPMT_PUBLIC has trailing or non-canonical bytes")
	}
	if pub.Type != tpm2.TPMAlgRSA {
		return nil, bad("TPMT_PUBLIC of type %#04x, want RSA", uint16(pub.Type))
	}
	parms, err := pub.Parameters.RSADetail()
	if err != nil {
		return nil, bad("%v", err)
	}
	unique, err := pub.Unique.RSA()
	if err != nil {
		return nil, bad("%v", err)
	}
	rk, err := tpm2.RSAPub(parms, unique)
	if err != nil {
		return nil, bad("%v", err)
	}
	return &akPublic{key: rk, public: pub}, nil
}

// checkAttributes reports whether the AK is a restricted signing key that
// the TPM generated and cannot export: only such a key signs nothing but
// TPM-generated structures, so a quote by it is the TPM's. Its error wraps
// attestation.ErrUntrustedRoot.
func (a *akPublic) checkAttributes() error { return a.checkAttributesAs(attestation.ErrUntrustedRoot) }

// checkAttributesAs is checkAttributes with an error wrapping sentinel.
func (a *akPublic) checkAttributesAs(sentinel error) error {
	at := a.public.ObjectAttributes
	var missing []string
	for _, f := range []struct {
		set  bool
		name string
	}{{at.FixedTPM, "fixedTPM"}, {at.FixedParent, "fixedParent"}, {at.SensitiveDataOrigin, "sensitiveDataOrigin"}, {at.Restricted, "restricted"}, {at.SignEncrypt, "sign"}} {
		if !f.set {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 || at.Decrypt {
		return fmt.Errorf("%w: the attestation key's attributes lack %v or have decrypt: it is not a restricted signing key the TPM generated and holds, so what it signs need not come from the TPM",
			sentinel, missing)
	}
	return nil
}
