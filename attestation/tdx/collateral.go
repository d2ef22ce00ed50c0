package tdx

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/pcs"

	"github.com/kura-cc/kura/attestation"
)

// Intel PCS response headers carrying issuer chains (URL-encoded PEM).
const (
	tcbInfoChainHeader    = "TCB-Info-Issuer-Chain"
	qeIdentityChainHeader = "SGX-Enclave-Identity-Issuer-Chain"
	pckCRLChainHeader     = "SGX-PCK-CRL-Issuer-Chain"
)

// Versions of the collateral formats this package understands.
const (
	tcbInfoID         = "TDX"
	tcbInfoVersion    = 3
	qeIdentityID      = "TD_QE"
	qeIdentityVersion = 2
)

// The files of a collateral directory, as LoadCollateralDir reads them.
var collateralFiles = []struct {
	name  string
	field func(*attestation.Collateral) *[]byte
}{
	{"tcb_info.json", func(c *attestation.Collateral) *[]byte { return &c.TCBInfo }},
	{"tcb_info_issuer_chain.pem", func(c *attestation.Collateral) *[]byte { return &c.TCBInfoIssuerChain }},
	{"qe_identity.json", func(c *attestation.Collateral) *[]byte { return &c.QEIdentity }},
	{"qe_identity_issuer_chain.pem", func(c *attestation.Collateral) *[]byte { return &c.QEIdentityIssuerChain }},
	{"pck_crl.der", func(c *attestation.Collateral) *[]byte { return &c.PCKCRL }},
	{"pck_crl_issuer_chain.pem", func(c *attestation.Collateral) *[]byte { return &c.PCKCRLIssuerChain }},
	{"root_ca_crl.der", func(c *attestation.Collateral) *[]byte { return &c.RootCACRL }},
}

// maxCollateralFileSize bounds each collateral file; real ones are a few KiB
// (PCK CRLs of the processor CA reach a few hundred KiB).
const maxCollateralFileSize = 1 << 20

// LoadCollateralDir reads Intel PCS collateral saved in dir as the files
// tcb_info.json and qe_identity.json (response bodies),
// tcb_info_issuer_chain.pem, qe_identity_issuer_chain.pem and
// pck_crl_issuer_chain.pem (issuer chains, PEM or URL-encoded PEM as PCS
// sends them), pck_crl.der and root_ca_crl.der. Missing files are left
// empty; the Verifier decides what it needs. Nothing is verified here.
func LoadCollateralDir(dir string) (*attestation.Collateral, error) {
	col := new(attestation.Collateral)
	found := 0
	for _, f := range collateralFiles {
		path := filepath.Join(dir, f.name)
		data, err := readFileLimit(path, maxCollateralFileSize)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tdx collateral: %w", err)
		}
		*f.field(col) = data
		found++
	}
	if found == 0 {
		return nil, fmt.Errorf("tdx collateral: %s holds none of tcb_info.json, qe_identity.json, pck_crl.der, root_ca_crl.der or their issuer chains", dir)
	}
	return col, nil
}

func readFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, limit is %d", path, fi.Size(), limit)
	}
	data := make([]byte, fi.Size())
	if _, err := f.ReadAt(data, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

// NewBundle wraps a quote captured outside kura, raw or hex-encoded, and
// optional collateral into an evidence bundle with empty runtime data. Its
// report_data binding cannot be checked; only the quote can.
func NewBundle(q []byte, col *attestation.Collateral) (*attestation.Bundle, error) {
	raw := q
	if trimmed := bytes.TrimSpace(q); len(trimmed) > 0 && isHex(trimmed) {
		decoded, err := hex.DecodeString(string(trimmed))
		if err != nil {
			return nil, fmt.Errorf("%w: hex quote: %v", attestation.ErrMalformed, err)
		}
		raw = decoded
	}
	if _, err := parseQuote(raw); err != nil {
		return nil, err
	}
	b := &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.TDX, Evidence: raw, Collateral: col}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}

// isHex reports whether b is non-empty, even-length hexadecimal. A raw quote
// starts with the little-endian version 4 or 5, a byte that is not a hex
// digit, so the two forms cannot be confused.
func isHex(b []byte) bool {
	if len(b)%2 != 0 {
		return false
	}
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// rootCRLURL is where Intel publishes the SGX Root CA CRL, the CRL
// distribution point of the root certificate.
const rootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// gatherCollateral returns the collateral for a quote whose PCK
// certificate has the given FMSPC and CA type: the bundle's, field by field,
// and what is missing from the Getter (CRLs only when revocation checking
// is on). Fields neither has stay empty, for the caller to judge; Getter
// failures are logged. Only a cancelled context is an error.
func (v *Verifier) gatherCollateral(ctx context.Context, b *attestation.Bundle, pck *pckResult) (*attestation.Collateral, error) {
	col := new(attestation.Collateral)
	if b.Collateral != nil {
		*col = *b.Collateral
	}
	if v.cfg.Getter == nil {
		return col, nil
	}
	type item struct {
		url    string
		header string
		body   *[]byte
		chain  *[]byte
		needed bool
	}
	items := []item{
		{pcs.TcbInfoURL(pck.exts.FMSPC), tcbInfoChainHeader, &col.TCBInfo, &col.TCBInfoIssuerChain, true},
		{pcs.QeIdentityURL(), qeIdentityChainHeader, &col.QEIdentity, &col.QEIdentityIssuerChain, true},
		{pcs.PckCrlURL(pck.ca), pckCRLChainHeader, &col.PCKCRL, &col.PCKCRLIssuerChain, v.cfg.CheckRevocations},
		{rootCRLURL, "", &col.RootCACRL, nil, v.cfg.CheckRevocations},
	}
	for _, it := range items {
		if !it.needed || len(*it.body) > 0 {
			continue
		}
		header, body, err := v.cfg.Getter.Get(ctx, it.url)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			v.log.WarnContext(ctx, "tdx collateral fetch failed", "url", it.url, "err", err)
			continue
		}
		*it.body = body
		if it.chain != nil {
			*it.chain = []byte(http.Header(header).Get(it.header))
		}
	}
	return col, nil
}

// decodeIssuerChain accepts an issuer chain as PEM or as the URL-encoded
// PEM of Intel PCS headers. Plain PEM is recognised first because query
// unescaping would turn its '+' characters into spaces.
func decodeIssuerChain(chain []byte) []byte {
	if bytes.Contains(chain, []byte("-----BEGIN CERTIFICATE-----")) {
		return chain
	}
	s, err := url.QueryUnescape(string(chain))
	if err != nil {
		return chain
	}
	return []byte(s)
}

// signedBody extracts the member named field of a PCS response body
// ({"tcbInfo": {...}, "signature": "..."}) exactly as served, because Intel
// signs those bytes, and the signature.
func signedBody(what, field string, body []byte) (json.RawMessage, []byte, error) {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", attestation.ErrMalformed, what, err)
	}
	signed, ok := outer[field]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s has no %q member", attestation.ErrMalformed, what, field)
	}
	var sigHex string
	if err := json.Unmarshal(outer["signature"], &sigHex); err != nil {
		return nil, nil, fmt.Errorf("%w: %s has no signature string", attestation.ErrMalformed, what)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s signature is not hex", attestation.ErrMalformed, what)
	}
	return signed, sig, nil
}

// issuerChain is a verified PCS issuer chain: the TCB signing
// certificate under the Intel SGX Root CA, and the window in which both are
// valid.
type issuerChain struct {
	signer *x509.Certificate
	window window
}

// chainVerifier verifies the issuer chain of the PCS response what.
type chainVerifier func(what string, chainPEM []byte) (*issuerChain, error)

// verifyIssuerChain verifies a PCS issuer chain (TCB signing certificate,
// root) under trusted.
func verifyIssuerChain(trusted *x509.Certificate, what string, chainPEM []byte) (*issuerChain, error) {
	certs, err := parseChainPEM(what+" issuer chain", decodeIssuerChain(chainPEM), 2)
	if err != nil {
		return nil, err
	}
	signer, root := certs[0], certs[1]
	w, err := verifyChain(trusted, root, nil, signer, []string{tcbSigningCN})
	if err != nil {
		return nil, fmt.Errorf("%s issuer chain: %w", what, err)
	}
	return &issuerChain{signer: signer, window: w}, nil
}

// uncachedChains verifies every issuer chain it is given under trusted.
func uncachedChains(trusted *x509.Certificate) chainVerifier {
	return func(what string, chainPEM []byte) (*issuerChain, error) {
		return verifyIssuerChain(trusted, what, chainPEM)
	}
}

// verifySigned verifies an Intel-signed PCS response under its issuer
// chain, verified by chains, and returns the signed member, the signer and
// the window of the chain.
func verifySigned(chains chainVerifier, what, field string, body, chainPEM []byte) (json.RawMessage, *x509.Certificate, window, error) {
	signed, sig, err := signedBody(what, field, body)
	if err != nil {
		return nil, nil, window{}, err
	}
	ic, err := chains(what, chainPEM)
	if err != nil {
		return nil, nil, window{}, err
	}
	der, err := abi.SignatureToDER(sig)
	if err != nil {
		return nil, nil, window{}, fmt.Errorf("%w: %s signature: %v", attestation.ErrMalformed, what, err)
	}
	if err := ic.signer.CheckSignature(x509.ECDSAWithSHA256, signed, der); err != nil {
		return nil, nil, window{}, fmt.Errorf("%w: %s signature does not verify under %q", attestation.ErrBadSignature, what, ic.signer.Subject.CommonName)
	}
	return signed, ic.signer, ic.window, nil
}

// tcbInfo is a verified TDX TCB info.
type tcbInfo struct {
	info   pcs.TcbInfo
	signer *x509.Certificate
	window window
}

// verifyTCBInfo verifies a TDX TCB info response body under its issuer
// chain and decodes it.
func verifyTCBInfo(trusted *x509.Certificate, body, chainPEM []byte) (*tcbInfo, error) {
	return verifyTCBInfoWith(uncachedChains(trusted), body, chainPEM)
}

// verifyTCBInfoWith is verifyTCBInfo with the issuer chain verified by
// chains.
func verifyTCBInfoWith(chains chainVerifier, body, chainPEM []byte) (*tcbInfo, error) {
	signed, signer, w, err := verifySigned(chains, "tcb info", "tcbInfo", body, chainPEM)
	if err != nil {
		return nil, err
	}
	t := &tcbInfo{signer: signer}
	if err := json.Unmarshal(signed, &t.info); err != nil {
		return nil, fmt.Errorf("%w: tcb info: %v", attestation.ErrMalformed, err)
	}
	switch {
	case t.info.ID != tcbInfoID || t.info.Version != tcbInfoVersion:
		return nil, fmt.Errorf("%w: tcb info is %q version %d, want %q version %d", attestation.ErrMalformed, t.info.ID, t.info.Version, tcbInfoID, tcbInfoVersion)
	case len(t.info.TcbLevels) == 0:
		return nil, fmt.Errorf("%w: tcb info has no TCB levels", attestation.ErrMalformed)
	}
	w.narrow(t.info.IssueDate, t.info.NextUpdate)
	t.window = w
	return t, nil
}

// qeIdentity is a verified TD QE identity.
type qeIdentity struct {
	id     pcs.EnclaveIdentity
	signer *x509.Certificate
	window window
}

// verifyQEIdentity verifies a QE identity response body under its issuer
// chain and decodes it.
func verifyQEIdentity(trusted *x509.Certificate, body, chainPEM []byte) (*qeIdentity, error) {
	return verifyQEIdentityWith(uncachedChains(trusted), body, chainPEM)
}

// verifyQEIdentityWith is verifyQEIdentity with the issuer chain verified
// by chains.
func verifyQEIdentityWith(chains chainVerifier, body, chainPEM []byte) (*qeIdentity, error) {
	signed, signer, w, err := verifySigned(chains, "qe identity", "enclaveIdentity", body, chainPEM)
	if err != nil {
		return nil, err
	}
	q := &qeIdentity{signer: signer}
	if err := json.Unmarshal(signed, &q.id); err != nil {
		return nil, fmt.Errorf("%w: qe identity: %v", attestation.ErrMalformed, err)
	}
	switch {
	case q.id.ID != qeIdentityID || q.id.Version != qeIdentityVersion:
		return nil, fmt.Errorf("%w: qe identity is %q version %d, want %q version %d", attestation.ErrMalformed, q.id.ID, q.id.Version, qeIdentityID, qeIdentityVersion)
	case len(q.id.TcbLevels) == 0:
		return nil, fmt.Errorf("%w: qe identity has no TCB levels", attestation.ErrMalformed)
	case len(q.id.Miscselect.Bytes) != 4 || len(q.id.MiscselectMask.Bytes) != 4:
		return nil, fmt.Errorf("%w: qe identity miscselect is not 4 bytes", attestation.ErrMalformed)
	}
	w.narrow(q.id.IssueDate, q.id.NextUpdate)
	q.window = w
	return q, nil
}

// checkTCBInfoMatches checks that the TCB info is for this platform and that
// the TDX module is Intel's, as Intel's algorithm requires.
func checkTCBInfoMatches(t *pcs.TcbInfo, pck *pcs.PckExtensions, body *tdBody) error {
	if !strings.EqualFold(t.Fmspc, pck.FMSPC) || !strings.EqualFold(t.PceID, pck.PCEID) {
		return fmt.Errorf("%w: tcb info is for FMSPC %s PCEID %s, the PCK certificate says FMSPC %s PCEID %s",
			attestation.ErrCollateralUnavailable, t.Fmspc, t.PceID, pck.FMSPC, pck.PCEID)
	}
	return checkModule("tcb info tdxModule", t.TdxModule.Mrsigner.Bytes, t.TdxModule.Attributes.Bytes, t.TdxModule.AttributesMask.Bytes, body)
}

// checkModule compares MRSIGNERSEAM and SEAM attributes under mask with a
// TDX module identity from the TCB info.
func checkModule(what string, mrsigner, attributes, mask []byte, body *tdBody) error {
	if !bytes.Equal(mrsigner, body.mrSignerSeam) {
		return fmt.Errorf("%w: MRSIGNERSEAM %x is not the %s mrsigner %x", attestation.ErrUntrustedRoot, body.mrSignerSeam, what, mrsigner)
	}
	if len(mask) != len(body.seamAttributes) || !bytes.Equal(applyMask(mask, body.seamAttributes), attributes) {
		return fmt.Errorf("%w: SEAM attributes %x under mask %x are not the %s attributes %x", attestation.ErrUntrustedRoot, body.seamAttributes, mask, what, attributes)
	}
	return nil
}

// checkQEIdentityMatches checks the QE report against the QE identity:
// MRSIGNER, ISVPRODID, MISCSELECT and attributes under their masks.
func checkQEIdentityMatches(id *pcs.EnclaveIdentity, qe qeReportFields) error {
	mask := leUint32(id.MiscselectMask.Bytes)
	if qe.miscSelect&mask != leUint32(id.Miscselect.Bytes) {
		return fmt.Errorf("%w: QE MISCSELECT %08x does not match the qe identity", attestation.ErrUntrustedRoot, qe.miscSelect)
	}
	if len(id.AttributesMask.Bytes) != len(qe.attributes) || !bytes.Equal(applyMask(id.AttributesMask.Bytes, qe.attributes), id.Attributes.Bytes) {
		return fmt.Errorf("%w: QE attributes %x do not match the qe identity", attestation.ErrUntrustedRoot, qe.attributes)
	}
	if !bytes.Equal(id.Mrsigner.Bytes, qe.mrSigner) {
		return fmt.Errorf("%w: QE MRSIGNER %x is not the qe identity mrsigner %x", attestation.ErrUntrustedRoot, qe.mrSigner, id.Mrsigner.Bytes)
	}
	if qe.isvProdID != uint32(id.IsvProdID) {
		return fmt.Errorf("%w: QE ISVPRODID %d is not the qe identity's %d", attestation.ErrUntrustedRoot, qe.isvProdID, id.IsvProdID)
	}
	return nil
}

// qeReportFields are the QE report fields the QE identity constrains.
type qeReportFields struct {
	miscSelect uint32
	attributes []byte
	mrSigner   []byte
	isvProdID  uint32
	isvSvn     uint32
}

func applyMask(mask, b []byte) []byte {
	out := make([]byte, len(mask))
	for i := range mask {
		out[i] = mask[i] & b[i]
	}
	return out
}

func leUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// crl is a parsed CRL whose signature verified under issuer.
type crl struct {
	list   *x509.RevocationList
	window window
}

// verifyCRL parses a DER CRL and checks its issuer and signature.
func verifyCRL(what string, der []byte, issuer *x509.Certificate) (*crl, error) {
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", attestation.ErrMalformed, what, err)
	}
	if !bytes.Equal(list.RawIssuer, issuer.RawSubject) {
		return nil, fmt.Errorf("%w: %s is issued by %q, not %q", attestation.ErrUntrustedRoot, what, list.Issuer.CommonName, issuer.Subject.CommonName)
	}
	if err := list.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", attestation.ErrBadSignature, what, err)
	}
	c := &crl{list: list}
	c.window.narrow(list.ThisUpdate, list.NextUpdate)
	return c, nil
}

// revoked reports whether cert's serial number is on the list.
func (c *crl) revoked(cert *x509.Certificate) bool {
	for _, e := range c.list.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}
