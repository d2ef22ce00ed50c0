package tdx

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/kura-cc/kura/attestation"
)

// Config configures a Verifier. The zero value verifies against the
// collateral in each bundle, at the current time, without CRLs.
type Config struct {
	// Getter fetches collateral the bundle lacks, by the Intel PCS URL it
	// is served at (pcs.TcbInfoURL, pcs.QeIdentityURL, pcs.PckCrlURL and
	// the root CA CRL distribution point), with issuer chains in the
	// headers PCS uses. Nil means only bundle collateral is used.
	Getter attestation.Getter
	// Now is the verification time for certificates, TCB info, QE
	// identity and CRLs. Nil means time.Now.
	Now func() time.Time
	// CheckRevocations requires the PCK CRL, its issuer chain and the
	// Intel SGX Root CA CRL, and fails verification when the PCK
	// certificate, its CA or a TCB signing certificate is revoked.
	CheckRevocations bool
	// AllowMissingCollateral accepts quotes whose TCB info or QE identity
	// cannot be found: the signature and PCK chain checks still run, the
	// collateral checks are recorded as skipped and tcb_status is empty.
	// Collateral that is present is always verified.
	AllowMissingCollateral bool
	// Logger receives one record per verification decision. Nil discards.
	Logger *slog.Logger
}

// maxCacheEntries bounds each of the Verifier's caches.
const maxCacheEntries = 256

// Verifier verifies TDX quotes. It is safe for concurrent use. It caches
// the outcome of verifying PCK chains, PCS issuer chains (one for the TCB
// info and the QE identity, which share their signer), TCB infos, QE
// identities and CRLs, keyed by the SHA-256 of their bytes, and checks
// validity periods against the verification time on every call.
type Verifier struct {
	cfg  Config
	log  *slog.Logger
	root *x509.Certificate

	pckChains    *cache[*pckResult]
	issuerChains *cache[*issuerChain]
	tcbInfos     *cache[*tcbInfo]
	qeIDs        *cache[*qeIdentity]
	crls         *cache[*crl]
	pckCRLChain  *cache[*x509.Certificate]
}

var _ attestation.Verifier = (*Verifier)(nil)

// NewVerifier returns a Verifier for cfg.
func NewVerifier(cfg Config) (*Verifier, error) {
	root, err := parseRoot()
	if err != nil {
		return nil, fmt.Errorf("tdx: embedded Intel SGX Root CA: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Verifier{
		cfg:          cfg,
		log:          log,
		root:         root,
		pckChains:    newCache[*pckResult](maxCacheEntries),
		issuerChains: newCache[*issuerChain](maxCacheEntries),
		tcbInfos:     newCache[*tcbInfo](maxCacheEntries),
		qeIDs:        newCache[*qeIdentity](maxCacheEntries),
		crls:         newCache[*crl](maxCacheEntries),
		pckCRLChain:  newCache[*x509.Certificate](maxCacheEntries),
	}, nil
}

func (v *Verifier) now() time.Time {
	if v.cfg.Now != nil {
		return v.cfg.Now()
	}
	return time.Now()
}

// Check names, in the order Verify records them.
const (
	checkParse     = "quote parse"
	checkPCK       = "pck chain"
	checkQEReport  = "qe report"
	checkSignature = "quote signature"
	checkEventLog  = "event log parse"
	checkReplay    = "event log replay"
	checkTCBInfo   = "tcb info"
	checkQEID      = "qe identity"
	checkRevoke    = "revocation"
	checkTCBLevel  = "tcb level"
)

// Verify verifies the TDX quote in b.Evidence (see the package
// documentation for the steps) and returns its claims:
//
//	tee          "tdx"
//	measurement  MRTD, hex
//	debug        TD_ATTRIBUTES.DEBUG (bit 0)
//	report_data  hex
//	insecure     false
//	tcb_status   Intel's TCB status, "" when collateral was missing and allowed
//	tdx          quote_version, mr_td, mr_config_id, mr_owner,
//	             mr_owner_config, rtmr0..rtmr3, mr_seam, mr_signer_seam,
//	             seam_attributes, td_attributes, xfam, tee_tcb_svn (hex);
//	             tcb_status, qe_tcb_status, tcb_date (strings);
//	             advisory_ids ([]string); fmspc (hex); and for v5 quotes
//	             mr_service_td and tee_tcb_svn2 (hex, empty for TDX 1.0
//	             bodies); with a CCEL event log (b.EventLog), events
//	             (the replayed events, as tpm's vtpm.events, with rtmr
//	             0..3), replayed_rtmrs and unverified_events.
//
// With b.EventLog, Verify replays it to RTMR0–3 once the quote signature
// has authenticated them (before the collateral checks) and fails as attestation.ErrBinding, naming the RTMR, when one differs
// from the quote's. Verify does not check report_data against runtime data.
func (v *Verifier) Verify(ctx context.Context, b *attestation.Bundle) (*attestation.Result, error) {
	res := &attestation.Result{TEE: attestation.TDX}
	fail := func(check string, err error) (*attestation.Result, error) {
		v.log.WarnContext(ctx, "tdx quote rejected", "check", check, "err", err)
		return res, res.Fail(check, err)
	}
	if b == nil || b.TEE != attestation.TDX {
		return fail(checkParse, fmt.Errorf("%w: bundle is not for tee %q", attestation.ErrMalformed, attestation.TDX))
	}
	now := v.now()

	q, err := parseQuote(b.Evidence)
	if err != nil {
		return fail(checkParse, err)
	}
	res.Pass(checkParse, fmt.Sprintf("quote v%d, %d bytes", q.version, len(b.Evidence)))

	pck, err := v.verifyPCK(q, now)
	if err != nil {
		return fail(checkPCK, err)
	}
	res.Pass(checkPCK, fmt.Sprintf("PCK certificate (FMSPC %s) chains to the Intel SGX Root CA", pck.exts.FMSPC))

	if err := verifyQEReport(q, pck.leaf); err != nil {
		return fail(checkQEReport, err)
	}
	res.Pass(checkQEReport, "QE report signed by the PCK key and binds the attestation key")

	if err := verifyQuoteSignature(q); err != nil {
		return fail(checkSignature, err)
	}
	res.Pass(checkSignature, "header and TD quote body signed by the attestation key")

	var rr *rtmrReplay
	if len(b.EventLog) > 0 {
		l, err := parseCCEL(b.EventLog)
		if err != nil {
			return fail(checkEventLog, err)
		}
		res.Pass(checkEventLog, fmt.Sprintf("CCEL crypto-agile event log, %d events", len(l.Events)))
		if rr, err = replayRTMRs(l); err == nil {
			err = rr.checkRTMRs(q.body.rtmrs)
		}
		if err != nil {
			return fail(checkReplay, err)
		}
		res.Pass(checkReplay, fmt.Sprintf("RTMR0-3 replayed from %d events (%d, %d, %d, %d) equal the quote's", len(rr.events), rr.counts[0], rr.counts[1], rr.counts[2], rr.counts[3]))
	}

	ev, check, err := v.checkCollateral(ctx, res, b, q, pck, now)
	if err != nil {
		return fail(check, err)
	}

	res.ReportData = append([]byte(nil), q.body.reportData...)
	res.Claims = claims(q, pck, ev)
	if rr != nil {
		tdx := res.Claims["tdx"].(map[string]any)
		tdx["events"] = rr.events
		tdx["replayed_rtmrs"] = []string{"rtmr0", "rtmr1", "rtmr2", "rtmr3"}
		tdx["unverified_events"] = rr.unverified
	}
	v.log.InfoContext(ctx, "tdx quote verified", "mr_td", hex.EncodeToString(q.body.mrTd), "tcb_status", res.Claims["tcb_status"], "fmspc", pck.exts.FMSPC)
	return res, nil
}

// verifyPCK verifies the quote's PCK chain, from the cache when it has
// been verified before.
func (v *Verifier) verifyPCK(q *quote, now time.Time) (*pckResult, error) {
	chain := q.pckChainPEM()
	key := cacheKey(chain)
	pck, ok := v.pckChains.get(key)
	if !ok {
		var err error
		if pck, err = verifyPCKChain(v.root, chain); err != nil {
			return nil, err
		}
		v.pckChains.put(key, pck)
	}
	if err := pck.window.check("PCK certificate chain", now); err != nil {
		return nil, err
	}
	return pck, nil
}

// checkCollateral runs the collateral checks, recording those that pass or
// are skipped on res, and returns the TCB evaluation (nil when skipped) or
// the name of the failing check and its error.
func (v *Verifier) checkCollateral(ctx context.Context, res *attestation.Result, b *attestation.Bundle, q *quote, pck *pckResult, now time.Time) (*tcbEvaluation, string, error) {
	col, err := v.gatherCollateral(ctx, b, pck)
	if err != nil {
		return nil, checkTCBInfo, fmt.Errorf("%w: %w", attestation.ErrCollateralUnavailable, err)
	}
	missing := func(check, what string) error {
		if !v.cfg.AllowMissingCollateral {
			return fmt.Errorf("%w: no %s for FMSPC %s in the bundle or from the getter", attestation.ErrCollateralUnavailable, what, pck.exts.FMSPC)
		}
		res.Skip(check, "no "+what+"; missing collateral allowed by configuration")
		return nil
	}

	var info *tcbInfo
	if len(col.TCBInfo) == 0 {
		if err := missing(checkTCBInfo, "tcb info"); err != nil {
			return nil, checkTCBInfo, err
		}
	} else {
		if info, err = v.verifyTCBInfo(col, now); err == nil {
			err = checkTCBInfoMatches(&info.info, pck.exts, &q.body)
		}
		if err != nil {
			return nil, checkTCBInfo, err
		}
		res.Pass(checkTCBInfo, fmt.Sprintf("signed by %q, FMSPC %s, tcbEvaluationDataNumber %d, next update %s",
			info.signer.Subject.CommonName, info.info.Fmspc, info.info.TcbEvaluationDataNumber, info.info.NextUpdate.UTC().Format(time.RFC3339)))
	}

	var qeID *qeIdentity
	report := q.qeReport()
	qe := qeReportFields{
		miscSelect: report.GetMiscSelect(), attributes: report.GetAttributes(), mrSigner: report.GetMrSigner(),
		isvProdID: report.GetIsvProdId(), isvSvn: report.GetIsvSvn(),
	}
	if len(col.QEIdentity) == 0 {
		if err := missing(checkQEID, "qe identity"); err != nil {
			return nil, checkQEID, err
		}
	} else {
		if qeID, err = v.verifyQEIdentity(col, now); err == nil {
			err = checkQEIdentityMatches(&qeID.id, qe)
		}
		if err != nil {
			return nil, checkQEID, err
		}
		res.Pass(checkQEID, fmt.Sprintf("signed by %q, tcbEvaluationDataNumber %d, next update %s",
			qeID.signer.Subject.CommonName, qeID.id.TcbEvaluationDataNumber, qeID.id.NextUpdate.UTC().Format(time.RFC3339)))
	}

	if !v.cfg.CheckRevocations {
		res.Skip(checkRevoke, "revocation checking not configured")
	} else {
		if err := v.checkRevocation(col, pck, info, qeID, now); err != nil {
			return nil, checkRevoke, err
		}
		res.Pass(checkRevoke, "PCK certificate, PCK CA and TCB signing certificates not revoked")
	}

	var ev *tcbEvaluation
	if info == nil || qeID == nil {
		res.Skip(checkTCBLevel, "needs both tcb info and qe identity")
	} else {
		ev, err = evaluateTCB(&info.info, qeID.id.TcbLevels, tcbInputs{
			teeTcbSvn: q.body.teeTcbSvn, cpuSvn: pck.exts.TCB.CPUSvnComponents, pceSvn: pck.exts.TCB.PCESvn,
			qeIsvSvn: qe.isvSvn, mrSignerSeam: q.body.mrSignerSeam, seamAttributes: q.body.seamAttributes,
		})
		if err != nil {
			return nil, checkTCBLevel, err
		}
		res.Pass(checkTCBLevel, fmt.Sprintf("%s (platform %s, TDX module %s, QE %s)", ev.status, ev.platform, orNone(ev.module), ev.qe))
	}

	return ev, "", nil
}

// verifyTCBInfo verifies the collateral's TCB info, from the cache when it
// has been verified before, and checks it is valid at now.
func (v *Verifier) verifyTCBInfo(col *attestation.Collateral, now time.Time) (*tcbInfo, error) {
	key := cacheKey(col.TCBInfo, col.TCBInfoIssuerChain)
	t, ok := v.tcbInfos.get(key)
	if !ok {
		var err error
		if t, err = verifyTCBInfoWith(v.issuerChain, col.TCBInfo, col.TCBInfoIssuerChain); err != nil {
			return nil, err
		}
		v.tcbInfos.put(key, t)
	}
	return t, t.window.check("tcb info", now)
}

// issuerChain verifies a PCS issuer chain, from the cache when it has been
// verified before: the TCB info and the QE identity are signed by the same
// TCB signing certificate, whose chain is then verified once. The chain's
// window is checked by the callers, narrowed by their collateral's.
func (v *Verifier) issuerChain(what string, chainPEM []byte) (*issuerChain, error) {
	key := cacheKey(chainPEM)
	ic, ok := v.issuerChains.get(key)
	if !ok {
		var err error
		if ic, err = verifyIssuerChain(v.root, what, chainPEM); err != nil {
			return nil, err
		}
		v.issuerChains.put(key, ic)
	}
	return ic, nil
}

// verifyQEIdentity is verifyTCBInfo for the QE identity.
func (v *Verifier) verifyQEIdentity(col *attestation.Collateral, now time.Time) (*qeIdentity, error) {
	key := cacheKey(col.QEIdentity, col.QEIdentityIssuerChain)
	q, ok := v.qeIDs.get(key)
	if !ok {
		var err error
		if q, err = verifyQEIdentityWith(v.issuerChain, col.QEIdentity, col.QEIdentityIssuerChain); err != nil {
			return nil, err
		}
		v.qeIDs.put(key, q)
	}
	return q, q.window.check("qe identity", now)
}

// checkRevocation checks the PCK certificate against the PCK CRL and the
// PCK CA and TCB signing certificates against the Root CA CRL.
func (v *Verifier) checkRevocation(col *attestation.Collateral, pck *pckResult, info *tcbInfo, qeID *qeIdentity, now time.Time) error {
	if len(col.RootCACRL) == 0 || len(col.PCKCRL) == 0 || len(col.PCKCRLIssuerChain) == 0 {
		return fmt.Errorf("%w: revocation checking needs the PCK CRL, its issuer chain and the root CA CRL", attestation.ErrCollateralUnavailable)
	}
	rootCRL, err := v.verifyCRL("root CA CRL", col.RootCACRL, v.root, now)
	if err != nil {
		return err
	}
	// The PCK CRL is signed by the PCK CA named in its issuer chain, which
	// must itself chain to the root and be the CA that issued the PCK.
	chainKey := cacheKey(col.PCKCRLIssuerChain)
	crlCA, ok := v.pckCRLChain.get(chainKey)
	if !ok {
		certs, err := parseChainPEM("PCK CRL issuer chain", decodeIssuerChain(col.PCKCRLIssuerChain), 2)
		if err != nil {
			return err
		}
		if _, err := verifyChain(v.root, certs[1], nil, certs[0], []string{platformCN, processorCN}); err != nil {
			return fmt.Errorf("PCK CRL issuer chain: %w", err)
		}
		crlCA = certs[0]
		v.pckCRLChain.put(chainKey, crlCA)
	}
	if !crlCA.Equal(pck.intermediate) {
		return fmt.Errorf("%w: the PCK CRL is issued by %q, not the CA that issued the PCK certificate", attestation.ErrUntrustedRoot, crlCA.Subject.CommonName)
	}
	pckCRL, err := v.verifyCRL("PCK CRL", col.PCKCRL, crlCA, now)
	if err != nil {
		return err
	}
	if pckCRL.revoked(pck.leaf) {
		return fmt.Errorf("%w: PCK certificate %x is revoked", attestation.ErrUntrustedRoot, pck.leaf.SerialNumber)
	}
	check := []*x509.Certificate{pck.intermediate}
	if info != nil {
		check = append(check, info.signer)
	}
	if qeID != nil {
		check = append(check, qeID.signer)
	}
	for _, c := range check {
		if rootCRL.revoked(c) {
			return fmt.Errorf("%w: %q certificate %x is revoked", attestation.ErrUntrustedRoot, c.Subject.CommonName, c.SerialNumber)
		}
	}
	return nil
}

// verifyCRL verifies a CRL under issuer, from the cache when it has been
// verified before, and checks it is current at now.
func (v *Verifier) verifyCRL(what string, der []byte, issuer *x509.Certificate, now time.Time) (*crl, error) {
	key := cacheKey(der, issuer.Raw)
	c, ok := v.crls.get(key)
	if !ok {
		var err error
		if c, err = verifyCRL(what, der, issuer); err != nil {
			return nil, err
		}
		v.crls.put(key, c)
	}
	return c, c.window.check(what, now)
}

// claims renders the verified quote as the claims documented on Verify.
func claims(q *quote, pck *pckResult, ev *tcbEvaluation) map[string]any {
	b := &q.body
	tcbStatus, qeStatus, date, advisories := "", "", "", []string{}
	if ev != nil {
		tcbStatus, qeStatus, date, advisories = string(ev.status), string(ev.qe), ev.date, ev.advisoryIDs
	}
	tdx := map[string]any{
		"quote_version":   q.version,
		"mr_td":           hex.EncodeToString(b.mrTd),
		"mr_config_id":    hex.EncodeToString(b.mrConfigID),
		"mr_owner":        hex.EncodeToString(b.mrOwner),
		"mr_owner_config": hex.EncodeToString(b.mrOwnerConfig),
		"rtmr0":           hex.EncodeToString(b.rtmrs[0]),
		"rtmr1":           hex.EncodeToString(b.rtmrs[1]),
		"rtmr2":           hex.EncodeToString(b.rtmrs[2]),
		"rtmr3":           hex.EncodeToString(b.rtmrs[3]),
		"mr_seam":         hex.EncodeToString(b.mrSeam),
		"mr_signer_seam":  hex.EncodeToString(b.mrSignerSeam),
		"seam_attributes": hex.EncodeToString(b.seamAttributes),
		"td_attributes":   hex.EncodeToString(b.tdAttributes),
		"xfam":            hex.EncodeToString(b.xfam),
		"tee_tcb_svn":     hex.EncodeToString(b.teeTcbSvn),
		"tcb_status":      tcbStatus,
		"qe_tcb_status":   qeStatus,
		"advisory_ids":    advisories,
		"tcb_date":        date,
		"fmspc":           pck.exts.FMSPC,
	}
	if q.version == 5 {
		tdx["mr_service_td"] = hex.EncodeToString(b.mrServiceTd)
		tdx["tee_tcb_svn2"] = hex.EncodeToString(b.teeTcbSvn2)
	}
	return map[string]any{
		"tee":         string(attestation.TDX),
		"measurement": hex.EncodeToString(b.mrTd),
		"debug":       b.tdAttributes[0]&1 != 0,
		"report_data": hex.EncodeToString(b.reportData),
		"insecure":    false,
		"tcb_status":  tcbStatus,
		"tdx":         tdx,
	}
}
