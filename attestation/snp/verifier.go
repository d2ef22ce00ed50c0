package snp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/kura-cc/kura/attestation"
)

// Names of the checks a Verifier records on the Result, in order.
const (
	checkParse      = "report parse"
	checkCerts      = "certificates"
	checkChain      = "certificate chain"
	checkSignature  = "report signature"
	checkTCB        = "tcb vs vcek"
	checkChipID     = "chip id vs hwid"
	checkVendor     = "vendor rules"
	checkRevocation = "revocation"
)

// Config configures a Verifier.
type Config struct {
	// Getter fetches certificates missing from the evidence (the VCEK, by
	// the AMD KDS URL go-sev-guest uses) and, with CheckRevocations, AMD's
	// CRL. Nil means offline: evidence without its VCEK or VLEK fails with
	// attestation.ErrCollateralUnavailable. The ASK, ASVK and ARK are never
	// fetched: AMD's are embedded.
	Getter attestation.Getter
	// Now returns the time at which certificate validity is judged. Nil
	// means time.Now.
	Now func() time.Time
	// CheckRevocations fetches AMD's CRL for the product line through
	// Getter and fails evidence whose ASK, ASVK or endorsement key it
	// revokes. Off by default, since it needs Getter.
	CheckRevocations bool
	// Logger receives one record per verification with its outcome. Nil
	// discards.
	Logger *slog.Logger
}

// Verifier verifies SEV-SNP evidence. It implements attestation.Verifier
// and is safe for concurrent use.
type Verifier struct {
	getter           attestation.Getter
	now              func() time.Time
	checkRevocations bool
	log              *slog.Logger
	roots            map[string]*productRoots // by product line
	chains           chainCache
}

// NewVerifier returns a Verifier trusting AMD's embedded Milan, Genoa and
// Turin roots.
func NewVerifier(cfg Config) (*Verifier, error) {
	roots, err := loadRoots()
	if err != nil {
		return nil, fmt.Errorf("snp: %v", err)
	}
	v := &Verifier{
		getter:           cfg.Getter,
		now:              cfg.Now,
		checkRevocations: cfg.CheckRevocations,
		log:              cfg.Logger,
		roots:            roots,
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	return v, nil
}

// Verify checks b's report and certificates and returns the report's claims.
// On failure the error wraps one of attestation's sentinels and the Result
// lists the checks made so far.
func (v *Verifier) Verify(ctx context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	res := &attestation.Result{TEE: attestation.SNP}
	r, err := v.verify(ctx, b, res)
	if err != nil {
		v.log.LogAttrs(ctx, slog.LevelWarn, "snp evidence rejected", slog.String("reason", err.Error()))
		return res, err
	}
	res.ReportData = r.report.GetReportData()
	res.Claims = claims(r)
	v.log.LogAttrs(ctx, slog.LevelInfo, "snp evidence verified",
		slog.String("product", r.chain.line),
		slog.String("signer", r.signer.String()),
		slog.String("measurement", hex.EncodeToString(r.report.GetMeasurement())),
		slog.Bool("cached_chain", r.cached))
	return res, nil
}

// verified is what a successful verification established.
type verified struct {
	report *spb.Report
	signer abi.ReportSigner
	chain  *chain
	cached bool
}

func (v *Verifier) verify(ctx context.Context, b *attestation.Bundle, res *attestation.Result) (*verified, error) {
	now := v.now()

	// Parse: no cryptography yet.
	if b == nil {
		return nil, res.Fail(checkParse, fmt.Errorf("%w: no bundle", attestation.ErrMalformed))
	}
	if b.TEE != attestation.SNP {
		return nil, res.Fail(checkParse, fmt.Errorf("%w: bundle is for tee %q, not %q", attestation.ErrMalformed, b.TEE, attestation.SNP))
	}
	raw, report, info, err := parseReport(b.Evidence)
	if err != nil {
		return nil, res.Fail(checkParse, err)
	}
	res.Pass(checkParse, fmt.Sprintf("report version %d, signed by the %v", report.GetVersion(), info.SigningKey))

	ch, cached, err := v.chainFor(ctx, b.Certs, report, info.SigningKey, now, res)
	if err != nil {
		return nil, err
	}
	out := &verified{report: report, signer: info.SigningKey, chain: ch, cached: cached}

	// Signature: the report, by the endorsement key the chain vouches for.
	if err := verify.SnpReportSignature(raw, ch.ek); err != nil {
		return nil, res.Fail(checkSignature, fmt.Errorf("%w: %v", attestation.ErrBadSignature, err))
	}
	res.Pass(checkSignature, fmt.Sprintf("ECDSA P-384 signature by the %v", info.SigningKey))

	if err := v.vendorChecks(report, info, out.chain, res); err != nil {
		return nil, err
	}
	if err := v.checkRevocation(ctx, out.chain, now, res); err != nil {
		return nil, err
	}
	return out, nil
}

// chainFor returns the verified chain of the endorsement key that signed
// report, and whether it came from the cache: a chain verified before,
// found by the certificate bytes exactly as the evidence gives them, or the
// certificates parsed (the endorsement key fetched through the Getter when
// missing) and the chain verified. It records the certificates and chain
// checks on res.
func (v *Verifier) chainFor(ctx context.Context, certs []byte, report *spb.Report, signer abi.ReportSigner, now time.Time, res *attestation.Result) (*chain, bool, error) {
	ekRole, icaRole := roleVCEK, roleASK
	if signer == abi.VlekReportSigner {
		ekRole, icaRole = roleVLEK, roleASVK
	}
	line := reportProductLine(report)
	key := newChainKey(signer, line, certs, nil)
	if ch := v.chains.get(key, now, v.roots); ch != nil {
		res.Pass(checkCerts, fmt.Sprintf("%v from the evidence; %d certificates in the evidence", ekRole, ch.inBundle))
		res.Pass(checkChain, cachedDetail(ch, ekRole))
		return ch, true, nil
	}
	set, err := parseCerts(certs)
	if err != nil {
		return nil, false, res.Fail(checkCerts, err)
	}
	inBundle, source := len(set.der), "evidence"
	if set.der[ekRole] == nil {
		if err := v.fetchVCEK(ctx, report, ekRole, set); err != nil {
			return nil, false, res.Fail(checkCerts, err)
		}
		key = newChainKey(signer, line, certs, set.der[ekRole])
		source = "getter"
	}
	res.Pass(checkCerts, fmt.Sprintf("%v from the %s; %d certificates in the evidence", ekRole, source, inBundle))
	if ch := v.chains.get(key, now, v.roots); ch != nil {
		res.Pass(checkChain, cachedDetail(ch, ekRole))
		return ch, true, nil
	}
	ch, err := v.verifyChain(report, signer, set, ekRole, icaRole, now)
	if err != nil {
		return nil, false, res.Fail(checkChain, err)
	}
	ch.inBundle = inBundle
	v.chains.put(key, ch)
	res.Pass(checkChain, chainDetail(ch, ekRole))
	return ch, false, nil
}

// parseReport accepts the raw 1184-byte report or its hex encoding.
func parseReport(evidence []byte) ([]byte, *spb.Report, abi.SignerInfo, error) {
	var info abi.SignerInfo
	raw := evidence
	if len(raw) != abi.ReportSize {
		trimmed := bytes.TrimSpace(evidence)
		if len(trimmed) != 2*abi.ReportSize {
			return nil, nil, info, fmt.Errorf("%w: evidence is %d bytes, want a %d-byte SNP report or %d hex digits",
				attestation.ErrMalformed, len(evidence), abi.ReportSize, 2*abi.ReportSize)
		}
		raw = make([]byte, abi.ReportSize)
		if _, err := hex.Decode(raw, trimmed); err != nil {
			return nil, nil, info, fmt.Errorf("%w: evidence is %d bytes but not hex: %v", attestation.ErrMalformed, len(evidence), err)
		}
	}
	if err := abi.ValidateReportFormat(raw); err != nil {
		return nil, nil, info, fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	report, err := abi.ReportToProto(raw)
	if err != nil {
		return nil, nil, info, fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	if report.GetSignatureAlgo() != abi.SignEcdsaP384Sha384 {
		return nil, nil, info, fmt.Errorf("%w: signature algorithm %d, want %d (ECDSA P-384 with SHA-384)",
			attestation.ErrMalformed, report.GetSignatureAlgo(), abi.SignEcdsaP384Sha384)
	}
	info, err = abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		return nil, nil, info, fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	if info.SigningKey != abi.VcekReportSigner && info.SigningKey != abi.VlekReportSigner {
		return nil, nil, info, fmt.Errorf("%w: report is not signed (signing key %v)", attestation.ErrBadSignature, info.SigningKey)
	}
	return raw, report, info, nil
}

// reportProductLine returns the product line the report names (report
// version 3 and later), or "" for version 2 reports, which name none.
func reportProductLine(report *spb.Report) string {
	if fms := report.GetCpuid1EaxFms(); fms != 0 {
		return kds.ProductLineFromFms(fms)
	}
	return ""
}

// fetchVCEK fetches the missing VCEK through the Getter, at the URL
// go-sev-guest uses. A VLEK cannot be fetched: AMD's KDS serves it to the
// cloud provider only.
func (v *Verifier) fetchVCEK(ctx context.Context, report *spb.Report, ekRole role, set *certSet) error {
	if ekRole == roleVLEK {
		return fmt.Errorf("%w: the report is VLEK-signed and the evidence has no VLEK certificate (AMD's KDS serves VLEKs only to the cloud provider)",
			attestation.ErrCollateralUnavailable)
	}
	if v.getter == nil {
		return fmt.Errorf("%w: the evidence has no VCEK certificate and no Getter is configured (offline)", attestation.ErrCollateralUnavailable)
	}
	if allZero(report.GetChipId()) {
		return fmt.Errorf("%w: the evidence has no VCEK certificate and CHIP_ID is masked, so it cannot be fetched", attestation.ErrCollateralUnavailable)
	}
	line := reportProductLine(report)
	if line == "" {
		line = kds.DefaultProductLine() // version 2 reports do not say; go-sev-guest assumes Milan too
	}
	url := kds.VCEKCertURL(line, report.GetChipId(), kds.TCBVersion(report.GetReportedTcb()))
	_, body, err := v.getter.Get(ctx, url)
	if err != nil {
		return fmt.Errorf("%w: fetching the VCEK from %s: %w", attestation.ErrCollateralUnavailable, url, err)
	}
	der, _, err := nextCert(body, true)
	if err != nil {
		return fmt.Errorf("%w: the VCEK fetched from %s: %v", attestation.ErrCollateralUnavailable, url, err)
	}
	c, r, err := parseClassify(der)
	if err != nil {
		return fmt.Errorf("%w: the VCEK fetched from %s: %v", attestation.ErrCollateralUnavailable, url, err)
	}
	if r != roleVCEK {
		return fmt.Errorf("%w: %s served an %v certificate, not a VCEK", attestation.ErrCollateralUnavailable, url, r)
	}
	return set.add(roleVCEK, der, c)
}

// verifyChain checks the endorsement key certificate up to AMD's embedded
// ARK for the report's product line, once: an ARK in the evidence must be
// that ARK; an ASK or ASVK in the evidence must be issued and signed by it
// (the embedded ones were checked when the Verifier was made); the
// endorsement key must be shaped as AMD's KDS issues them (checkKDSProfile)
// and signed by the intermediate under crypto/x509's path rules; all three
// must be valid at now. These are the checks go-sev-guest's
// verify.SnpAttestation makes of the chain, which the Verifier no longer
// calls, so that each chain is verified once rather than twice.
func (v *Verifier) verifyChain(report *spb.Report, signer abi.ReportSigner, set *certSet, ekRole, icaRole role, now time.Time) (*chain, error) {
	ek := set.cert[ekRole]
	exts, err := kds.CertificateExtensions(ek, signer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v certificate extensions: %v", attestation.ErrMalformed, ekRole, err)
	}
	line := reportProductLine(report)
	if line == "" {
		// Version 2 reports name no product; the certificate does.
		line = kds.ProductLineOfProductName(exts.ProductName)
	}
	roots := v.roots[line]
	if roots == nil {
		return nil, fmt.Errorf("%w: no AMD root is trusted for product line %q", attestation.ErrUntrustedRoot, line)
	}

	ark := roots.ark
	if c := set.cert[roleARK]; c != nil && !bytes.Equal(c.Raw, ark.Raw) {
		return nil, fmt.Errorf("%w: the ARK in the evidence (%q) is not AMD's ARK-%s", attestation.ErrUntrustedRoot, c.Subject.CommonName, line)
	}
	ica := roots.ask
	if icaRole == roleASVK {
		ica = roots.asvk
	}
	if c := set.cert[icaRole]; c != nil && !bytes.Equal(c.Raw, ica.Raw) {
		if c.Subject.CommonName != ica.Subject.CommonName {
			return nil, fmt.Errorf("%w: the %v in the evidence is %q, want %q", attestation.ErrUntrustedRoot, icaRole, c.Subject.CommonName, ica.Subject.CommonName)
		}
		if !bytes.Equal(c.RawIssuer, ark.RawSubject) {
			return nil, fmt.Errorf("%w: the %v in the evidence is issued by %q, not by AMD's ARK-%s", attestation.ErrUntrustedRoot, icaRole, c.Issuer.CommonName, line)
		}
		if err := c.CheckSignatureFrom(ark); err != nil {
			return nil, fmt.Errorf("%w: the %v in the evidence is not signed by AMD's ARK-%s: %v", attestation.ErrUntrustedRoot, icaRole, line, err)
		}
		ica = c
	}
	if !bytes.Equal(ek.RawIssuer, ica.RawSubject) {
		return nil, fmt.Errorf("%w: the %v is issued by %q, not by AMD's %q", attestation.ErrUntrustedRoot, ekRole, ek.Issuer.CommonName, ica.Subject.CommonName)
	}
	ch := &chain{line: line, roots: roots, ek: ek, ica: ica, ark: ark, exts: exts, notBefore: ek.NotBefore, notAfter: ek.NotAfter}
	for _, c := range []struct {
		r    role
		cert *x509.Certificate
	}{{ekRole, ek}, {icaRole, ica}, {roleARK, ark}} {
		if now.Before(c.cert.NotBefore) || now.After(c.cert.NotAfter) {
			return nil, fmt.Errorf("%w: the %v certificate is valid from %s to %s, not at %s", attestation.ErrCollateralExpired,
				c.r, c.cert.NotBefore.UTC().Format(time.RFC3339), c.cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if c.cert.NotBefore.After(ch.notBefore) {
			ch.notBefore = c.cert.NotBefore
		}
		if c.cert.NotAfter.Before(ch.notAfter) {
			ch.notAfter = c.cert.NotAfter
		}
	}
	if err := checkKDSProfile(ek, exts, signer, line, reportProductLine(report) == ""); err != nil {
		return nil, fmt.Errorf("%w: the %v certificate is not as AMD's KDS issues them: %v", attestation.ErrBadSignature, ekRole, err)
	}
	// The signature, with crypto/x509's path rules (critical extensions,
	// basic constraints, path length, key usage), the intermediate as the
	// anchor: it is the embedded one or was checked against the ARK above.
	// go-sev-guest uses the same rules with its default options.
	anchor := x509.NewCertPool()
	anchor.AddCert(ica)
	if _, err := ek.Verify(x509.VerifyOptions{Roots: anchor, CurrentTime: now}); err != nil {
		if sigErr := ek.CheckSignatureFrom(ica); sigErr != nil {
			return nil, fmt.Errorf("%w: the %v certificate's signature does not verify with AMD's %s: %v", attestation.ErrBadSignature, ekRole, ica.Subject.CommonName, sigErr)
		}
		return nil, fmt.Errorf("%w: the %v certificate does not chain to AMD's %s: %v", attestation.ErrUntrustedRoot, ekRole, ica.Subject.CommonName, err)
	}
	return ch, nil
}

// checkKDSProfile checks the endorsement key certificate against AMD's
// Key Distribution Service specification (57230) as go-sev-guest's
// verify.SnpAttestation does: X.509 version 3, signed with RSASSA-PSS and
// SHA-384, an ECDSA P-384 key, AMD's subject and issuer names (Santa Clara,
// CA, US; Advanced Micro Devices; Engineering), subject SEV-VCEK or
// SEV-VLEK and issuer SEV-<line> or SEV-VLEK-<line>; and, when the report
// names no product (version 2), a product name in the certificate that
// go-sev-guest knows, with the stepping for a VCEK. It checks no signature.
func checkKDSProfile(ek *x509.Certificate, exts *kds.Extensions, signer abi.ReportSigner, line string, v2 bool) error {
	if ek.Version != 3 {
		return fmt.Errorf("version %d, want 3", ek.Version)
	}
	if ek.SignatureAlgorithm != x509.SHA384WithRSAPSS {
		return fmt.Errorf("signature algorithm %v, want SHA-384 with RSASSA-PSS", ek.SignatureAlgorithm)
	}
	if pub, ok := ek.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() {
		return fmt.Errorf("the public key is not ECDSA P-384")
	}
	if v2 {
		if _, err := kds.ParseProductName(exts.ProductName, signer); err != nil {
			return err
		}
	}
	issuer := "SEV-" + line
	if signer == abi.VlekReportSigner {
		issuer = "SEV-VLEK-" + line
	}
	for _, n := range []struct {
		what, cn string
		name     pkix.Name
	}{{"subject", "SEV-" + signer.String(), ek.Subject}, {"issuer", issuer, ek.Issuer}} {
		if n.name.CommonName != n.cn {
			return fmt.Errorf("%s common name %q, want %q", n.what, n.name.CommonName, n.cn)
		}
		for _, f := range []struct {
			what string
			got  []string
			want string
		}{
			{"country", n.name.Country, "US"},
			{"locality", n.name.Locality, "Santa Clara"},
			{"state", n.name.Province, "CA"},
			{"organization", n.name.Organization, "Advanced Micro Devices"},
			{"organizational unit", n.name.OrganizationalUnit, "Engineering"},
		} {
			if len(f.got) != 1 || f.got[0] != f.want {
				return fmt.Errorf("%s %s %q, want %q", n.what, f.what, f.got, f.want)
			}
		}
	}
	return nil
}

func cachedDetail(ch *chain, ekRole role) string {
	return fmt.Sprintf("%v → %s → ARK-%s verified earlier (cached)", ekRole, ch.ica.Subject.CommonName, ch.line)
}

func chainDetail(ch *chain, ekRole role) string {
	return fmt.Sprintf("%v → %s → ARK-%s (AMD root embedded in go-sev-guest)", ekRole, ch.ica.Subject.CommonName, ch.line)
}

// attestationProto assembles go-sev-guest's view of the evidence.
func attestationProto(report *spb.Report, signer abi.ReportSigner, ch *chain) *spb.Attestation {
	certs := &spb.CertificateChain{AskCert: ch.ica.Raw, ArkCert: ch.ark.Raw, Extras: map[string][]byte{}}
	if signer == abi.VlekReportSigner {
		certs.VlekCert = ch.ek.Raw
	} else {
		certs.VcekCert = ch.ek.Raw
	}
	return &spb.Attestation{Report: report, CertificateChain: certs}
}

// vendorChecks checks AMD's consistency rules between the report and its
// endorsement key certificate: its TCB is the reported TCB and no higher
// than the current TCB; its HWID is the CHIP_ID. go-sev-guest's validate
// package then checks the same rules and the firmware version rules, with
// every reference-value option left open (those are the policy's to judge).
func (v *Verifier) vendorChecks(report *spb.Report, info abi.SignerInfo, ch *chain, res *attestation.Result) error {
	certTCB := uint64(ch.exts.TCBVersion)
	if report.GetReportedTcb() != certTCB {
		return res.Fail(checkTCB, fmt.Errorf("%w: REPORTED_TCB %#016x is not the %v certificate's TCB %#016x",
			attestation.ErrBadSignature, report.GetReportedTcb(), info.SigningKey, certTCB))
	}
	if !kds.TCBPartsLE(kds.DecomposeTCBVersion(kds.TCBVersion(certTCB)), kds.DecomposeTCBVersion(kds.TCBVersion(report.GetCurrentTcb()))) {
		return res.Fail(checkTCB, fmt.Errorf("%w: the %v certificate's TCB %#016x is above CURRENT_TCB %#016x",
			attestation.ErrBadSignature, info.SigningKey, certTCB, report.GetCurrentTcb()))
	}
	res.Pass(checkTCB, fmt.Sprintf("REPORTED_TCB %#016x is the certificate's TCB", certTCB))

	switch {
	case info.SigningKey == abi.VlekReportSigner:
		res.Skip(checkChipID, "VLEK certificates carry no HWID")
	case allZero(report.GetChipId()):
		res.Skip(checkChipID, "CHIP_ID is masked by the host")
	case !bytes.Equal(report.GetChipId(), ch.exts.HWID):
		return res.Fail(checkChipID, fmt.Errorf("%w: CHIP_ID %x is not the VCEK's HWID %x",
			attestation.ErrBadSignature, report.GetChipId(), ch.exts.HWID))
	default:
		res.Pass(checkChipID, "CHIP_ID is the VCEK's HWID")
	}

	if err := validate.SnpAttestation(attestationProto(report, info.SigningKey, ch), vendorRulesOnly()); err != nil {
		return res.Fail(checkVendor, fmt.Errorf("%w: %v", attestation.ErrBadSignature, err))
	}
	res.Pass(checkVendor, "go-sev-guest validate with no reference values")
	return nil
}

// vendorRulesOnly returns go-sev-guest validation options that permit every
// guest policy and platform and compare no reference values, leaving only
// AMD's internal consistency rules.
func vendorRulesOnly() *validate.Options {
	return &validate.Options{
		GuestPolicy: abi.SnpPolicy{
			SMT:        true,
			MigrateMA:  true,
			Debug:      true,
			CXLAllowed: true,
		},
		// Committed firmware below current firmware is legitimate mid-update;
		// the policy sees both TCBs.
		PermitProvisionalFirmware: true,
	}
}

// checkRevocation checks AMD's CRL for the chain's product line when asked.
func (v *Verifier) checkRevocation(ctx context.Context, ch *chain, now time.Time, res *attestation.Result) error {
	if !v.checkRevocations {
		res.Skip(checkRevocation, "not requested")
		return nil
	}
	if v.getter == nil {
		return res.Fail(checkRevocation, fmt.Errorf("%w: no Getter to fetch AMD's CRL", attestation.ErrCollateralUnavailable))
	}
	root := v.roots[ch.line].sev
	crl, err := verify.GetCrlAndCheckRootContext(ctx, root, &verify.Options{Getter: kdsGetter{ctx: ctx, g: v.getter}, Now: now})
	if err != nil {
		var unavailable verify.CRLUnavailableErr
		switch {
		case errors.As(err, &unavailable):
			return res.Fail(checkRevocation, fmt.Errorf("%w: AMD's %s CRL: %v", attestation.ErrCollateralUnavailable, ch.line, err))
		case !v.crlSigned(root):
			return res.Fail(checkRevocation, fmt.Errorf("%w: AMD's %s CRL: %v", attestation.ErrBadSignature, ch.line, err))
		default:
			return res.Fail(checkRevocation, fmt.Errorf("%w: %v", attestation.ErrUntrustedRoot, err))
		}
	}
	if now.After(crl.NextUpdate) {
		return res.Fail(checkRevocation, fmt.Errorf("%w: AMD's %s CRL was due for renewal at %s", attestation.ErrCollateralExpired,
			ch.line, crl.NextUpdate.UTC().Format(time.RFC3339)))
	}
	for _, rc := range crl.RevokedCertificateEntries {
		for _, c := range []*x509.Certificate{ch.ica, ch.ek} {
			if rc.SerialNumber != nil && rc.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return res.Fail(checkRevocation, fmt.Errorf("%w: %q (serial %x) was revoked at %s", attestation.ErrUntrustedRoot,
					c.Subject.CommonName, c.SerialNumber, rc.RevocationTime.UTC().Format(time.RFC3339)))
			}
		}
	}
	res.Pass(checkRevocation, fmt.Sprintf("not revoked by AMD's %s CRL of %s", ch.line, crl.ThisUpdate.UTC().Format(time.RFC3339)))
	return nil
}

// crlSigned reports whether the CRL go-sev-guest cached on root is signed
// by the root's ARK.
func (v *Verifier) crlSigned(root *trust.AMDRootCerts) bool {
	root.Mu.Lock()
	defer root.Mu.Unlock()
	return root.CRL != nil && root.CRL.CheckSignatureFrom(root.ProductCerts.Ark) == nil
}

// kdsGetter adapts an attestation.Getter to go-sev-guest's HTTPS getters.
type kdsGetter struct {
	ctx context.Context
	g   attestation.Getter
}

func (k kdsGetter) Get(url string) ([]byte, error) { return k.GetContext(k.ctx, url) }

func (k kdsGetter) GetContext(ctx context.Context, url string) ([]byte, error) {
	_, body, err := k.g.Get(ctx, url)
	return body, err
}

var (
	_ trust.HTTPSGetter        = kdsGetter{}
	_ trust.ContextHTTPSGetter = kdsGetter{}
	_ attestation.Verifier     = (*Verifier)(nil)
)

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ReportMeasurement returns the launch measurement of a raw (or hex) SNP
// report, as a manifest's reference values list it, without verifying
// anything: for writing a manifest, never for trusting a report.
func ReportMeasurement(evidence []byte) ([]byte, error) {
	_, report, _, err := parseReport(evidence)
	if err != nil {
		return nil, err
	}
	return report.GetMeasurement(), nil
}
