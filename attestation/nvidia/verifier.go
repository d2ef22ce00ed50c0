package nvidia

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// Names of the checks a Verifier records on the Result, in order.
const (
	checkParse     = "report parse"
	checkChain     = "device certificate chain"
	checkSignature = "report signature"
	checkNonce     = "nonce"
	checkFWID      = "fwid"
)

// Config configures a Verifier.
type Config struct {
	// Roots are the trusted NVIDIA device roots (LoadRoots reads them).
	// Nil means NVIDIA's Device Identity CA, embedded (DeviceRoot).
	Roots []*x509.Certificate
	// Now is the time at which certificates must be valid. Nil means
	// time.Now.
	Now func() time.Time
	// Logger receives one record per verification with its outcome. Nil
	// discards.
	Logger *slog.Logger
}

// Verifier verifies NVIDIA Hopper GPU attestation reports offline. It is
// safe for concurrent use.
type Verifier struct {
	roots []*x509.Certificate
	now   func() time.Time
	log   *slog.Logger
}

// NewVerifier returns a Verifier trusting cfg.Roots.
func NewVerifier(cfg Config) (*Verifier, error) {
	for i, r := range cfg.Roots {
		if r == nil {
			return nil, fmt.Errorf("nvidia: root %d is nil", i)
		}
	}
	v := &Verifier{roots: append([]*x509.Certificate(nil), cfg.Roots...), now: cfg.Now, log: cfg.Logger}
	if cfg.Roots == nil {
		v.roots = []*x509.Certificate{DeviceRoot()}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

var _ attestation.Verifier = (*Verifier)(nil)

// Verify verifies an nvidia bundle: its evidence is the report, its certs
// the device certificate chain (PEM, leaf first). The nonce is not checked
// here: the Result's ReportData is the report's nonce, zero-padded, which
// the caller compares with the bundle's runtime data (package verifier,
// as for every TEE; nvidia evidence signs 32 bytes of it).
func (v *Verifier) Verify(ctx context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	if b == nil || b.TEE != attestation.NVIDIA {
		return nil, fmt.Errorf("%w: bundle is not for tee %s", attestation.ErrMalformed, attestation.NVIDIA)
	}
	return v.VerifyReport(ctx, b.Evidence, b.Certs, nil)
}

// VerifyReport verifies a GPU attestation report (ParseReport's input)
// with the device certificate chain the GPU sent with it (PEM, leaf
// first), and, unless nonce is nil, checks that the report answers nonce,
// the 32 bytes the verifier asked the GPU to sign. It records its checks
// on the Result in order: the report parses; the chain verifies up to a
// configured root with every certificate valid at Config.Now; the leaf's
// P-384 key signed the SHA-384 of the request and the response up to the
// signature; the request's nonce is nonce; and the report's FWID, when it
// carries one, is the leaf certificate's. The Result's ReportData is the
// report's nonce, zero-padded to attestation.ReportDataSize, and its
// Claims are set when every check passed. Measurements are judged by the
// appraisal policy's reference values, not here. On failure the error
// wraps one of attestation's sentinels: ErrMalformed, ErrUntrustedRoot,
// ErrCollateralExpired, ErrBadSignature or ErrBinding.
func (v *Verifier) VerifyReport(ctx context.Context, report, certChainPEM, nonce []byte) (*attestation.Result, error) {
	res := &attestation.Result{TEE: attestation.NVIDIA}
	r, leaf, fwid, err := v.verify(report, certChainPEM, nonce, res)
	if err != nil {
		v.log.LogAttrs(ctx, slog.LevelWarn, "nvidia evidence rejected", slog.String("reason", err.Error()))
		return res, err
	}
	rd := reportData(r)
	res.ReportData = rd[:]
	c := claims(r, leaf, fwid)
	res.Claims = c
	v.log.LogAttrs(ctx, slog.LevelInfo, "nvidia evidence verified",
		slog.String("device", leaf.Subject.String()),
		slog.String("serial", hex.EncodeToString(leaf.SerialNumber.Bytes())),
		slog.Any("driver_version", c["driver_version"]),
		slog.Any("vbios_version", c["vbios_version"]),
		slog.Any("measurement", c["measurement"]))
	return res, nil
}

func (v *Verifier) verify(report, chainPEM, nonce []byte, res *attestation.Result) (*Report, *x509.Certificate, []byte, error) {
	r, err := ParseReport(report)
	if err != nil {
		return nil, nil, nil, res.Fail(checkParse, err)
	}
	res.Pass(checkParse, fmt.Sprintf("SPDM 1.1 GET_MEASUREMENTS and MEASUREMENTS, %d measurement blocks, %d opaque fields", len(r.Blocks), len(r.Opaque)))

	now := v.now()
	leaf, chain, err := verifyChain(chainPEM, v.roots, now)
	if err != nil {
		return nil, nil, nil, res.Fail(checkChain, err)
	}
	res.Pass(checkChain, fmt.Sprintf("%q up to %q, %d certificates, valid at %s",
		leaf.Subject.CommonName, chain[len(chain)-1].Subject.CommonName, len(chain), now.UTC().Format(time.RFC3339)))

	key, err := p384Key(leaf)
	if err != nil {
		return nil, nil, nil, res.Fail(checkSignature, err)
	}
	digest := sha512.Sum384(r.signed)
	sr := new(big.Int).SetBytes(r.Signature[:SignatureSize/2])
	ss := new(big.Int).SetBytes(r.Signature[SignatureSize/2:])
	if !ecdsa.Verify(key, digest[:], sr, ss) {
		return nil, nil, nil, res.Fail(checkSignature, fmt.Errorf("%w: the ECDSA P-384 signature over the request and response does not verify with the device certificate's key", attestation.ErrBadSignature))
	}
	res.Pass(checkSignature, "ECDSA P-384 over SHA-384 of the GET_MEASUREMENTS request and the MEASUREMENTS response, by the device certificate's key")

	switch {
	case nonce == nil:
		res.Skip(checkNonce, "the report's nonce is its report data, which the caller checks against the runtime data")
	case !bytes.Equal(r.Nonce[:], nonce):
		return nil, nil, nil, res.Fail(checkNonce, fmt.Errorf("%w: the report answers nonce %x, not the expected %x", attestation.ErrBinding, r.Nonce, nonce))
	default:
		res.Pass(checkNonce, "the request's nonce is the expected one")
	}

	fwid := certFWID(leaf)
	if reported, ok := r.opaqueValue(fieldFWID); ok && len(reported) > 0 {
		if !bytes.Equal(reported, fwid) {
			return nil, nil, nil, res.Fail(checkFWID, fmt.Errorf("%w: the report's FWID %x is not the device certificate's (%x): the certificate was not issued to the firmware that signed", attestation.ErrBadSignature, reported, fwid))
		}
		res.Pass(checkFWID, "the report's FWID is the device certificate's")
	} else {
		res.Skip(checkFWID, "the report carries no FWID")
	}
	return r, leaf, fwid, nil
}

// NewBundle builds an nvidia bundle from the artifacts as NVIDIA's tools
// write them: report, the attestation report raw or as hex text (as
// nvtrust's samples hold it); chainPEM, the device certificate chain, leaf
// first. The runtime data is empty: raw artifacts bind no kura runtime
// data, and the caller compares the report's nonce with the one it chose.
// It checks shape only; nothing is verified.
func NewBundle(report, chainPEM []byte) (*attestation.Bundle, error) {
	if text := bytes.TrimSpace(report); len(text)%2 == 0 && len(text) > 0 {
		if raw, err := hex.DecodeString(string(text)); err == nil {
			report = raw
		}
	}
	if _, err := ParseReport(report); err != nil {
		return nil, err
	}
	if _, err := parsePEMCerts(chainPEM); err != nil {
		return nil, fmt.Errorf("%w: nvidia certificate chain: %v", attestation.ErrMalformed, err)
	}
	b := &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.NVIDIA, Evidence: report, Certs: chainPEM}
	return b, b.Check()
}
