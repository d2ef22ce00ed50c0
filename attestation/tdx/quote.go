package tdx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/kura-cc/kura/attestation"
)

// MaxQuoteSize bounds the quote a Verifier accepts. Real quotes, whose bulk
// is the PEM PCK certificate chain, are about 5 KiB.
const MaxQuoteSize = 32 << 10

// intelQEVendorID is the QE_VENDOR_ID of Intel's quoting enclave.
var intelQEVendorID = []byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// quote is a parsed TDX quote, v4 or v5, reduced to what verification and
// the claims need. Nothing in it is verified.
type quote struct {
	version int
	header  *pb.Header
	body    tdBody
	auth    *pb.Ecdsa256BitQuoteV4AuthData
	// signed is the header and TD quote body (v4) or body descriptor (v5)
	// re-encoded from the parsed fields, the message the attestation key
	// signs. Re-encoding, rather than slicing the input, guarantees the
	// claims are exactly what was signed.
	signed []byte
}

// tdBody holds the TD quote body fields common to v4 and v5 and the two v5
// (TDX 1.5) additions.
type tdBody struct {
	teeTcbSvn      []byte
	mrSeam         []byte
	mrSignerSeam   []byte
	seamAttributes []byte
	tdAttributes   []byte
	xfam           []byte
	mrTd           []byte
	mrConfigID     []byte
	mrOwner        []byte
	mrOwnerConfig  []byte
	rtmrs          [][]byte
	reportData     []byte
	teeTcbSvn2     []byte // v5 body type 3 only
	mrServiceTd    []byte // v5 body type 3 only
}

// parseQuote parses a raw quote. Bytes after the signed data are tolerated
// and ignored, as go-tdx-guest does (its v4 test vector carries some).
func parseQuote(raw []byte) (q *quote, err error) {
	switch {
	case len(raw) == 0:
		return nil, fmt.Errorf("%w: empty quote", attestation.ErrMalformed)
	case len(raw) > MaxQuoteSize:
		return nil, fmt.Errorf("%w: quote is %d bytes, limit is %d", attestation.ErrMalformed, len(raw), MaxQuoteSize)
	}
	// The parser is third-party code fed untrusted bytes; a panic in it
	// must not take the verifier down.
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, fmt.Errorf("%w: quote parser panicked: %v", attestation.ErrMalformed, r)
		}
	}()
	parsed, err := abi.QuoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	q = new(quote)
	var bodyBytes []byte
	switch p := parsed.(type) {
	case *pb.QuoteV4:
		q.version, q.header, q.auth = 4, p.GetHeader(), p.GetSignedData()
		b := p.GetTdQuoteBody()
		q.body = tdBody{
			teeTcbSvn: b.GetTeeTcbSvn(), mrSeam: b.GetMrSeam(), mrSignerSeam: b.GetMrSignerSeam(),
			seamAttributes: b.GetSeamAttributes(), tdAttributes: b.GetTdAttributes(), xfam: b.GetXfam(),
			mrTd: b.GetMrTd(), mrConfigID: b.GetMrConfigId(), mrOwner: b.GetMrOwner(),
			mrOwnerConfig: b.GetMrOwnerConfig(), rtmrs: b.GetRtmrs(), reportData: b.GetReportData(),
		}
		bodyBytes, err = abi.TdQuoteBodyToAbiBytes(b)
	case *pb.QuoteV5:
		q.version, q.header, q.auth = 5, p.GetHeader(), p.GetSignedData()
		b := p.GetTdQuoteBodyDescriptor().GetTdQuoteBodyV5()
		q.body = tdBody{
			teeTcbSvn: b.GetTeeTcbSvn(), mrSeam: b.GetMrSeam(), mrSignerSeam: b.GetMrSignerSeam(),
			seamAttributes: b.GetSeamAttributes(), tdAttributes: b.GetTdAttributes(), xfam: b.GetXfam(),
			mrTd: b.GetMrTd(), mrConfigID: b.GetMrConfigId(), mrOwner: b.GetMrOwner(),
			mrOwnerConfig: b.GetMrOwnerConfig(), rtmrs: b.GetRtmrs(), reportData: b.GetReportData(),
			teeTcbSvn2: b.GetTeeTcbSvn2(), mrServiceTd: b.GetMrServiceTd(),
		}
		bodyBytes, err = abi.TdQuoteBodyDescriptorToAbiBytes(p.GetTdQuoteBodyDescriptor())
	default:
		return nil, fmt.Errorf("%w: unsupported quote type %T", attestation.ErrMalformed, parsed)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: re-encoding the quote body: %v", attestation.ErrMalformed, err)
	}
	headerBytes, err := abi.HeaderToAbiBytes(q.header)
	if err != nil {
		return nil, fmt.Errorf("%w: re-encoding the quote header: %v", attestation.ErrMalformed, err)
	}
	q.signed = append(headerBytes, bodyBytes...)
	if !bytes.Equal(q.header.GetQeVendorId(), intelQEVendorID) {
		return nil, fmt.Errorf("%w: QE vendor id %x is not Intel's", attestation.ErrMalformed, q.header.GetQeVendorId())
	}
	if len(q.body.rtmrs) != 4 || len(q.body.reportData) != attestation.ReportDataSize || len(q.body.tdAttributes) == 0 {
		return nil, fmt.Errorf("%w: TD quote body has unexpected field sizes", attestation.ErrMalformed)
	}
	return q, nil
}

// pckChainPEM returns the PCK certificate chain embedded in the quote.
func (q *quote) pckChainPEM() []byte {
	return q.auth.GetCertificationData().GetQeReportCertificationData().GetPckCertificateChainData().GetPckCertChain()
}

// qeReport returns the QE's enclave report.
func (q *quote) qeReport() *pb.EnclaveReport {
	return q.auth.GetCertificationData().GetQeReportCertificationData().GetQeReport()
}

// verifyQEReport checks the QE report signature under the PCK leaf key and
// that the QE report data is SHA-256(attestation key ‖ QE auth data) padded
// with zeros: the PCK vouches for the QE, and the QE for the attestation key.
func verifyQEReport(q *quote, pck *x509.Certificate) error {
	cd := q.auth.GetCertificationData().GetQeReportCertificationData()
	rawReport, err := abi.EnclaveReportToAbiBytes(cd.GetQeReport())
	if err != nil {
		return fmt.Errorf("%w: QE report: %v", attestation.ErrMalformed, err)
	}
	sig, err := abi.SignatureToDER(cd.GetQeReportSignature())
	if err != nil {
		return fmt.Errorf("%w: QE report signature: %v", attestation.ErrMalformed, err)
	}
	if err := pck.CheckSignature(x509.ECDSAWithSHA256, rawReport, sig); err != nil {
		return fmt.Errorf("%w: QE report signature does not verify under the PCK certificate", attestation.ErrBadSignature)
	}
	want := make([]byte, 64)
	h := sha256.New()
	h.Write(q.auth.GetEcdsaAttestationKey())
	h.Write(cd.GetQeAuthData().GetData())
	h.Sum(want[:0])
	if !bytes.Equal(cd.GetQeReport().GetReportData(), want) {
		return fmt.Errorf("%w: QE report data does not bind the attestation key", attestation.ErrBadSignature)
	}
	return nil
}

// verifyQuoteSignature checks the quote signature over the header and TD
// quote body under the attestation key. The key has no certificate of its
// own; verifyQEReport establishes it.
func verifyQuoteSignature(q *quote) error {
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, q.auth.GetEcdsaAttestationKey()...))
	if err != nil {
		return fmt.Errorf("%w: attestation key: %v", attestation.ErrMalformed, err)
	}
	sig, err := abi.SignatureToDER(q.auth.GetSignature())
	if err != nil {
		return fmt.Errorf("%w: quote signature: %v", attestation.ErrMalformed, err)
	}
	digest := sha256.Sum256(q.signed)
	if !ecdsa.VerifyASN1(key, digest[:], sig) {
		return fmt.Errorf("%w: quote signature does not verify under the attestation key", attestation.ErrBadSignature)
	}
	return nil
}

// QuoteMeasurement returns the MRTD of a raw TDX quote, as a manifest's
// reference values list it, without verifying anything: for writing a
// manifest, never for trusting a quote.
func QuoteMeasurement(raw []byte) ([]byte, error) {
	q, err := parseQuote(raw)
	if err != nil {
		return nil, err
	}
	return q.body.mrTd, nil
}
