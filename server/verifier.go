package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/attestation/cca"
	"github.com/kura-cc/kura/attestation/nvidia"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/attestation/tpm"
	"github.com/kura-cc/kura/collateral"
	"github.com/kura-cc/kura/internal/keyfile"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// Verification configures an attestation verifier: what it compares
// evidence with and where it finds collateral.
type Verification struct {
	// ReferenceFile holds the reference values, YAML or JSON; empty means
	// none.
	ReferenceFile string
	// PolicyFile is the appraisal policy in Rego; empty means kura's
	// built-in policy.
	PolicyFile string
	// DevMode accepts the INSECURE simulated TEE.
	DevMode bool
	// Collateral says where AMD KDS and Intel PCS collateral comes from.
	Collateral collateral.Config
	// CheckRevocations requires CRLs and refuses revoked certificates.
	CheckRevocations bool
	// Now is the verification clock (default time.Now).
	Now func() time.Time
	// CCACPAKFiles name files of trusted Arm CCA platform attestation keys
	// (PEM, JWK or CoMID: cca.LoadCPAKs); with none, CCA evidence fails
	// as untrusted.
	CCACPAKFiles []string
	// TPMAKFiles name PEM files of pinned TPM attestation keys
	// (tpm.LoadAKs) for plain TPM 2.0 quotes; with none, tpm evidence
	// fails as untrusted.
	TPMAKFiles []string
	// TPMAKCAFiles name files of certificate authorities (tpm.LoadAKCAs)
	// whose AK certificates make a tpm quote's key trusted.
	TPMAKCAFiles []string
	// TPMEKCAFiles name files of TPM manufacturers' EK certificate
	// authorities (tpm.LoadEKCAs). With any, the verifier is a privacy CA:
	// it certifies attestation keys proven by credential activation to
	// live in a TPM whose EK certificate chains to one of them
	// (tpm.PrivacyCA, the /v1/attestation/tpm endpoints), and trusts the
	// certificates it issues as it trusts TPMAKCAFiles'.
	TPMEKCAFiles []string
	// TPMAKCAKeyFile is the privacy CA's signing key, PEM ECDSA, created
	// (P-256, mode 0600) if missing; TPMAKCACertFile its self-signed
	// certificate, created for the key if missing. Both are required with
	// TPMEKCAFiles (a server defaults them to <DataDir>/tpm-ak-ca-key.pem
	// and <DataDir>/tpm-ak-ca.pem).
	TPMAKCAKeyFile, TPMAKCACertFile string
	// TPMAKValidity is how long issued AK certificates are valid (default
	// tpm.DefaultAKValidity, a year).
	TPMAKValidity time.Duration
}

// Service builds a verification service for SNP, TDX, Azure's vTPM
// evidence on either (az-snp-vtpm, az-tdx-vtpm), Arm CCA, plain TPM 2.0
// quotes, NVIDIA GPU reports (under NVIDIA's embedded device root) and the
// simulated TEE. issuer may be nil (no tokens); nonces nil
// tracks issued nonces in memory (verifier.Config.Nonces).
func (v Verification) Service(ctx context.Context, log *slog.Logger, issuer *token.Issuer, nonces verifier.NonceStore) (*verifier.Service, error) {
	var ref *appraisal.ReferenceValues
	if v.ReferenceFile != "" {
		var err error
		if ref, err = appraisal.LoadReferenceValues(v.ReferenceFile); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	var policy string
	if v.PolicyFile != "" {
		data, err := os.ReadFile(v.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: appraisal policy: %w", ErrConfig, err)
		}
		policy = string(data)
	}
	ap, err := appraisal.New(ctx, appraisal.Config{Policy: policy, Reference: ref, DevMode: v.DevMode})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cc := v.Collateral
	if cc.Logger == nil {
		cc.Logger = log
	}
	getter, err := collateral.New(cc)
	if err != nil {
		return nil, fmt.Errorf("%w: collateral: %w", ErrConfig, err)
	}
	now := v.Now
	if now == nil {
		now = time.Now
	}
	snpV, err := snp.NewVerifier(snp.Config{Getter: getter, Now: now, CheckRevocations: v.CheckRevocations, Logger: log})
	if err != nil {
		return nil, err
	}
	tdxV, err := tdx.NewVerifier(tdx.Config{Getter: getter, Now: now, CheckRevocations: v.CheckRevocations, Logger: log})
	if err != nil {
		return nil, err
	}
	simV, err := sim.NewVerifier(sim.Config{})
	if err != nil {
		return nil, err
	}
	// Azure vTPM evidence reuses the SNP and TDX verifiers (and so their
	// caches) for its hardware report.
	azureV, err := azure.NewVerifier(azure.Config{SNP: snpV, TDX: tdxV, Logger: log})
	if err != nil {
		return nil, err
	}
	var cpaks []cca.CPAK
	for _, f := range v.CCACPAKFiles {
		keys, err := cca.LoadCPAKs(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		cpaks = append(cpaks, keys...)
	}
	ccaV, err := cca.NewVerifier(cca.Config{CPAKs: cpaks, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var aks []*rsa.PublicKey
	for _, f := range v.TPMAKFiles {
		keys, err := tpm.LoadAKs(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		aks = append(aks, keys...)
	}
	var akCAs []*x509.Certificate
	for _, f := range v.TPMAKCAFiles {
		certs, err := tpm.LoadAKCAs(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		akCAs = append(akCAs, certs...)
	}
	var enroller verifier.AKEnroller
	if len(v.TPMEKCAFiles) > 0 {
		ca, err := v.privacyCA(now, log)
		if err != nil {
			return nil, err
		}
		enroller = ca
		caCert, err := x509.ParseCertificate(ca.CACertificate())
		if err != nil {
			return nil, err
		}
		akCAs = append(akCAs, caCert)
	}
	tpmV, err := tpm.NewVerifier(tpm.Config{AKs: aks, AKCAs: akCAs, Now: now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	nvidiaV, err := nvidia.NewVerifier(nvidia.Config{Now: now, Logger: log})
	if err != nil {
		return nil, err
	}
	return verifier.New(verifier.Config{
		TEEs: map[attestation.TEE]attestation.Verifier{
			attestation.SNP: snpV, attestation.TDX: tdxV, attestation.Sim: simV, attestation.CCA: ccaV,
			attestation.AzSNPvTPM: azureV, attestation.AzTDXvTPM: azureV, attestation.TPM: tpmV,
			attestation.NVIDIA: nvidiaV,
		},
		Appraiser:  ap,
		Issuer:     issuer,
		Nonces:     nonces,
		AKEnroller: enroller,
		Logger:     log,
	})
}

// privacyCA builds the verifier's TPM privacy CA: the EK certificate
// authorities of TPMEKCAFiles, and its key and certificate, created if
// missing.
func (v Verification) privacyCA(now func() time.Time, log *slog.Logger) (*tpm.PrivacyCA, error) {
	if v.TPMAKCAKeyFile == "" || v.TPMAKCACertFile == "" {
		return nil, fmt.Errorf("%w: TPM manufacturers configured (--tpm-ek-ca) but no file for the privacy CA's key and certificate: only a server with a data directory certifies attestation keys", ErrConfig)
	}
	var ekCAs []*x509.Certificate
	for _, f := range v.TPMEKCAFiles {
		certs, err := tpm.LoadEKCAs(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		ekCAs = append(ekCAs, certs...)
	}
	key, err := loadOrCreateKey(v.TPMAKCAKeyFile, "TPM AK CA key", log)
	if err != nil {
		return nil, err
	}
	cert, err := loadOrCreateCACert(v.TPMAKCACertFile, key, now(), log)
	if err != nil {
		return nil, err
	}
	ca, err := tpm.NewPrivacyCA(tpm.PrivacyCAConfig{EKCAs: ekCAs, Key: key, Certificate: cert, Validity: v.TPMAKValidity, Now: now, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	log.Info("TPM privacy CA ready: attestation keys are certified after credential activation",
		"ek_authorities", len(ekCAs), "ca", cert.Subject.String(), "certificate", v.TPMAKCACertFile)
	return ca, nil
}

// loadOrCreateCACert reads the privacy CA's certificate (PEM), which must
// be key's, creating a self-signed one there when the file does not exist.
func loadOrCreateCACert(path string, key *ecdsa.PrivateKey, now time.Time, log *slog.Logger) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		der, err := tpm.NewPrivacyCACertificate(key, now)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, fmt.Errorf("create the TPM AK CA certificate: %w", err)
		}
		if err := errors.Join(pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: der}), f.Close()); err != nil {
			return nil, fmt.Errorf("write the TPM AK CA certificate: %w", err)
		}
		log.Info("created TPM AK CA certificate", "path", path)
		return x509.ParseCertificate(der)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: TPM AK CA certificate: %w", ErrConfig, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: TPM AK CA certificate %s: no PEM CERTIFICATE block", ErrConfig, path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: TPM AK CA certificate %s: %w", ErrConfig, path, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: TPM AK CA certificate %s is not for the key beside it; remove it to have one made for the key", ErrConfig, path)
	}
	return cert, nil
}

// buildVerifier builds the verifier every server has (the key broker's
// /kbs/v0/attest uses it); only RoleVerifier mounts its API.
func (b *build) buildVerifier(ctx context.Context) error {
	key, err := loadOrCreateKey(b.path(b.cfg.TokenKeyFile, "verifier-key.pem"), "token signing key", b.log)
	if err != nil {
		return err
	}
	build := b.cfg.Version
	if b.cfg.DevMode {
		build += " (dev mode: INSECURE sim TEE accepted)"
	}
	if b.issuer, err = token.NewIssuer(token.IssuerConfig{Key: key, Build: build}); err != nil {
		return err
	}
	// Replicas share a PostgreSQL store, and through it their nonces. One
	// process (no store, or SQLite, which is for one process) keeps them
	// in memory: no store write per nonce (docs/spec/attestation.md §8.1).
	var nonces verifier.NonceStore
	if b.state != nil && isPostgres(b.path(b.cfg.Store, "kbs.db")) {
		nonces = b.state.Ephemeral()
	}
	v := b.cfg.Verification
	v.DevMode = b.cfg.DevMode
	if v.TPMAKCAKeyFile == "" {
		v.TPMAKCAKeyFile = b.path("", "tpm-ak-ca-key.pem")
	}
	if v.TPMAKCACertFile == "" {
		v.TPMAKCACertFile = b.path("", "tpm-ak-ca.pem")
	}
	b.verifier, err = v.Service(ctx, b.log, b.issuer, nonces)
	return err
}

// loadOrCreateKey reads an ECDSA signing key of the verifier (what names
// it) from a PEM file, creating a P-256 key there (mode 0600) when the
// file does not exist. A file others can reach is refused.
func loadOrCreateKey(path, what string, log *slog.Logger) (*ecdsa.PrivateKey, error) {
	data, err := keyfile.ReadSecret(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", what, err)
		}
		if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Close()); err != nil {
			return nil, fmt.Errorf("write %s: %w", what, err)
		}
		log.Info("created "+what, "path", path)
		return key, nil
	}
	if err != nil {
		return nil, refuseKeyFile(log, what, path, err)
	}
	defer clear(data)
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: %s %s: no PEM block", ErrConfig, what, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("%w: %s %s: %w", ErrConfig, what, path, err)
		}
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s %s: %T, want an ECDSA P-256 or P-384 key", ErrConfig, what, path, k)
	}
	return key, nil
}
