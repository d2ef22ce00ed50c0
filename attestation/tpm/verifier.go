package tpm

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
)

// Names of the checks a Verifier records, in order.
const (
	checkAKParse     = "attestation key parse"
	checkAKPinned    = "attestation key pinned"
	checkAKCert      = "attestation key certificate"
	checkAKAttrs     = "attestation key attributes"
	checkQuoteParse  = "tpm quote parse"
	checkQuoteSig    = "tpm quote signature"
	checkPCRs        = "pcr digest"
	checkEventLog    = "event log parse"
	checkIMALog      = "ima list parse"
	checkEventReplay = "event log replay"
)

// Config configures a Verifier.
type Config struct {
	// AKs are the pinned attestation keys (LoadAKs). With none, every
	// quote fails as untrusted.
	AKs []*rsa.PublicKey
	// AKCAs are the certificate authorities whose AK certificates are
	// trusted (LoadAKCAs): self-signed ones are roots, the others
	// intermediates. A quote by an AK that is not pinned is trusted when
	// the bundle's certs hold a certificate for it chaining to a root.
	AKCAs []*x509.Certificate
	// Now is the time AK certificates are checked at (default time.Now).
	Now func() time.Time
	// Logger receives one record per verification with its outcome. Nil
	// discards.
	Logger *slog.Logger
}

// Verifier verifies tpm evidence. It implements attestation.Verifier and is
// safe for concurrent use.
type Verifier struct {
	aks map[string]bool // PKIX DER of each pinned AK
	cas *akCAs
	now func() time.Time
	log *slog.Logger
}

var _ attestation.Verifier = (*Verifier)(nil)

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	v := &Verifier{aks: map[string]bool{}, cas: newAKCAs(cfg.AKCAs), now: cfg.Now, log: cfg.Logger}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	for _, k := range cfg.AKs {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("tpm: attestation key: %w", err)
		}
		v.aks[string(der)] = true
	}
	return v, nil
}

// Verify checks b and returns the claims of docs/spec/attestation.md §5:
// tee, measurement (the quote's pcrDigest), debug (false), report_data
// (the quote's extraData, zero-padded to 64 bytes, which is also
// Result.ReportData) and vtpm.
func (v *Verifier) Verify(ctx context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	res := &attestation.Result{TEE: attestation.TPM}
	claims, err := v.verify(b, res)
	if err != nil {
		v.log.LogAttrs(ctx, slog.LevelWarn, "tpm evidence rejected", slog.String("reason", err.Error()))
		return res, err
	}
	res.Claims = claims
	vt := claims["vtpm"].(map[string]any)
	v.log.LogAttrs(ctx, slog.LevelInfo, "tpm evidence verified", slog.Any("ak_sha256", vt["ak_sha256"]),
		slog.Any("measurement", claims["measurement"]), slog.Int("events", len(vt["events"].([]any))))
	return res, nil
}

func (v *Verifier) verify(b *attestation.Bundle, res *attestation.Result) (map[string]any, error) {
	if b == nil || b.TEE != attestation.TPM || b.VTPM == nil {
		return nil, res.Fail(checkAKParse, fmt.Errorf("%w: bundle is not for tee %s or has no vtpm member", attestation.ErrMalformed, attestation.TPM))
	}
	ak, err := parseAK(b.Evidence)
	if err != nil {
		return nil, res.Fail(checkAKParse, err)
	}
	akDER, err := x509.MarshalPKIXPublicKey(ak.key)
	if err != nil {
		return nil, res.Fail(checkAKParse, fmt.Errorf("%w: attestation key: %v", attestation.ErrMalformed, err))
	}
	akSum := sha256.Sum256(akDER)
	form := "PKIX"
	if ak.public != nil {
		form = "TPMT_PUBLIC"
	}
	res.Pass(checkAKParse, fmt.Sprintf("RSA-%d key from a %s (SPKI SHA-256 %x)", ak.key.N.BitLen(), form, akSum))
	var akCert map[string]any
	switch {
	case v.aks[string(akDER)]:
		res.Pass(checkAKPinned, "the attestation key is pinned in the verifier's configuration; nothing proves it is a hardware TPM's")
	case len(b.Certs) > 0:
		if akCert, err = v.cas.verifyAKCert(b.Certs, ak.key, v.now()); err != nil {
			return nil, res.Fail(checkAKCert, err)
		}
		res.Pass(checkAKCert, fmt.Sprintf("certified by %q (serial %s), which chains to the configured root %q", akCert["issuer"], akCert["serial"], akCert["root"]))
	default:
		return nil, res.Fail(checkAKPinned, fmt.Errorf("%w: the attestation key (SPKI SHA-256 %x) is not one of the %d pinned keys (--tpm-ak), and the bundle has no AK certificate (certs) for a configured authority (--tpm-ak-ca)",
			attestation.ErrUntrustedRoot, akSum, len(v.aks)))
	}
	if ak.public == nil {
		res.Skip(checkAKAttrs, "the evidence gives the key as PKIX, without TPM object attributes")
	} else if err := ak.checkAttributes(); err != nil {
		return nil, res.Fail(checkAKAttrs, err)
	} else {
		res.Pass(checkAKAttrs, "restricted signing key, fixedTPM, fixedParent, sensitiveDataOrigin")
	}

	q, err := azure.ParseTPMQuote(b.VTPM.Quote, b.VTPM.Signature)
	if err != nil {
		return nil, res.Fail(checkQuoteParse, err)
	}
	res.Pass(checkQuoteParse, fmt.Sprintf("TPMS_ATTEST quote, %d bytes of extraData, %s signature", len(q.ExtraData()), q.SchemeName()))
	if err := q.VerifySignature(ak.key); err != nil {
		return nil, res.Fail(checkQuoteSig, err)
	}
	res.Pass(checkQuoteSig, q.SchemeName()+" signature by the attestation key")
	pcrs, err := q.CheckPCRs(b.VTPM.PCRs)
	if err != nil {
		return nil, res.Fail(checkPCRs, err)
	}
	res.Pass(checkPCRs, fmt.Sprintf("%d PCR values hash to the quote's pcrDigest", len(b.VTPM.PCRs)))

	var log *eventLog
	if len(b.VTPM.EventLog) > 0 {
		if log, err = parseEventLog(b.VTPM.EventLog); err != nil {
			return nil, res.Fail(checkEventLog, err)
		}
		res.Pass(checkEventLog, fmt.Sprintf("crypto-agile event log, %d events", len(log.Events)))
	}
	var ima *imaList
	if len(b.VTPM.IMALog) > 0 {
		if ima, err = parseIMAList(b.VTPM.IMALog); err != nil {
			return nil, res.Fail(checkIMALog, err)
		}
		res.Pass(checkIMALog, fmt.Sprintf("%d entries, %s template hashes recomputed from file hashes and names", len(ima.entries), banks[ima.bank].Name))
	}
	events := []any{}
	var replayed []string
	unverified := 0
	var gceTech string
	if log == nil && ima == nil {
		res.Skip(checkEventReplay, "no event log: the PCR values are reported, not explained")
	} else {
		rr, err := replay(pcrs, log, ima)
		if err != nil {
			return nil, res.Fail(checkEventReplay, err)
		}
		events, replayed, unverified = rr.events, rr.replayed, rr.unverified
		if gceTech, err = gceTechnology(log, replayed); err != nil {
			return nil, res.Fail(checkEventReplay, err)
		}
		res.Pass(checkEventReplay, fmt.Sprintf("%d events replay to the quoted PCRs %s; %d events are for PCRs the quote does not cover and are not reported",
			len(events), strings.Join(replayed, " "), unverified))
	}
	if replayed == nil {
		replayed = []string{}
	}

	res.ReportData = make([]byte, attestation.ReportDataSize)
	copy(res.ReportData, q.ExtraData())
	trust := "pinned"
	if akCert != nil {
		trust = "certificate"
	}
	vt := map[string]any{
		"ak_pub":            hex.EncodeToString(akDER),
		"ak_sha256":         hex.EncodeToString(akSum[:]),
		"ak_trust":          trust,
		"qualified_signer":  hex.EncodeToString(q.QualifiedSigner()),
		"extra_data":        hex.EncodeToString(q.ExtraData()),
		"firmware_version":  hex.EncodeToString(binary.BigEndian.AppendUint64(nil, q.FirmwareVersion())),
		"signature":         q.SchemeName(),
		"pcrs":              pcrs,
		"events":            events,
		"replayed_pcrs":     replayed,
		"unverified_events": unverified,
	}
	if akCert != nil {
		vt["ak_certificate"] = akCert
	}
	if gceTech != "" {
		vt["gce_confidential_technology"] = gceTech
	}
	return map[string]any{
		"tee":         string(attestation.TPM),
		"measurement": hex.EncodeToString(q.PCRDigest()),
		"debug":       false,
		"insecure":    false,
		"report_data": hex.EncodeToString(res.ReportData),
		"vtpm":        vt,
	}, nil
}

// NewBundle builds a tpm bundle from raw artifacts: the AK (TPMT_PUBLIC or
// PKIX DER), the quote (TPMS_ATTEST), its signature (TPMT_SIGNATURE), the
// quoted PCR values in selection order, and optionally the event logs.
// The runtime data is empty: the verifier compares the quote's extraData
// with the expected nonce.
func NewBundle(ak, quote, signature []byte, pcrs [][]byte, eventLog, imaLog []byte) (*attestation.Bundle, error) {
	b := &attestation.Bundle{
		Version: attestation.BundleVersion, TEE: attestation.TPM, Evidence: ak,
		VTPM: &attestation.VTPM{Quote: quote, Signature: signature, PCRs: pcrs, EventLog: eventLog, IMALog: imaLog},
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}
