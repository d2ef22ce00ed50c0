package snp

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"

	"github.com/kura-cc/kura/attestation"
)

// maxCerts bounds how many certificates a certificate table or PEM bundle
// may hold. A complete chain has three, plus platform information entries.
const maxCerts = 8

// role is what a certificate is in AMD's key hierarchy.
type role int

const (
	roleVCEK role = iota + 1 // versioned chip endorsement key
	roleVLEK                 // versioned loaded endorsement key
	roleASK                  // AMD SEV signing key, signs VCEKs
	roleASVK                 // AMD SEV-VLEK signing key, signs VLEKs
	roleARK                  // AMD root key
)

func (r role) String() string {
	switch r {
	case roleVCEK:
		return "VCEK"
	case roleVLEK:
		return "VLEK"
	case roleASK:
		return "ASK"
	case roleASVK:
		return "ASVK"
	case roleARK:
		return "ARK"
	}
	return "unknown"
}

// certSet holds the certificates that came with the evidence, DER encoded
// and parsed, by role. Any of them may be missing.
type certSet struct {
	der  map[role][]byte
	cert map[role]*x509.Certificate
}

func (s *certSet) add(r role, der []byte, c *x509.Certificate) error {
	if _, dup := s.der[r]; dup {
		return fmt.Errorf("%w: certificates: two %v certificates", attestation.ErrMalformed, r)
	}
	s.der[r] = der
	s.cert[r] = c
	return nil
}

// parseCerts reads the Certs field of a bundle: the GUID certificate table
// of an extended report or configfs-tsm auxblob, or a concatenation of PEM
// and DER certificates (VCEK or VLEK, ASK or ASVK, ARK in any order).
func parseCerts(data []byte) (*certSet, error) {
	s := &certSet{der: map[role][]byte{}, cert: map[role]*x509.Certificate{}}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return s, nil
	case trimmed[0] == '-' || trimmed[0] == 0x30:
		return s, parseCertList(s, trimmed)
	default:
		return s, parseCertTable(s, data)
	}
}

// parseCertTable reads a GUID certificate table. Entries may hold DER or
// PEM (Linux hosts serve either). Entries with GUIDs other than the
// certificate ones, such as go-sev-guest's platform information, are
// ignored.
func parseCertTable(s *certSet, data []byte) error {
	headers, err := abi.ParseSnpCertTableHeader(data)
	if err != nil {
		return fmt.Errorf("%w: certificate table: %v", attestation.ErrMalformed, err)
	}
	if len(headers) > maxCerts {
		return fmt.Errorf("%w: certificate table has %d entries, limit is %d", attestation.ErrMalformed, len(headers), maxCerts)
	}
	for i, h := range headers {
		end := uint64(h.Offset) + uint64(h.Length)
		if end > uint64(len(data)) {
			return fmt.Errorf("%w: certificate table entry %d (%v) spans bytes %d to %d of %d",
				attestation.ErrMalformed, i, h.GUID, h.Offset, end, len(data))
		}
		var want []role
		// GUIDs of the GHCB specification's MSG_REPORT_REQ certificate
		// table; the ASK GUID is also used for the ASVK, and go-sev-guest
		// gives the ASVK the all-zero GUID.
		switch h.GUID.String() {
		case abi.VcekGUID:
			want = []role{roleVCEK}
		case abi.VlekGUID:
			want = []role{roleVLEK}
		case abi.AskGUID:
			want = []role{roleASK, roleASVK}
		case abi.ArkGUID:
			want = []role{roleARK}
		case abi.AsvkGUID:
			want = []role{roleASVK}
		default:
			continue
		}
		if h.Length == 0 {
			continue
		}
		der, _, err := nextCert(data[h.Offset:end], true)
		if err != nil {
			return fmt.Errorf("%w: certificate table entry %d (%v): %v", attestation.ErrMalformed, i, h.GUID, err)
		}
		c, r, err := parseClassify(der)
		if err != nil {
			return fmt.Errorf("certificate table entry %d (%v): %w", i, h.GUID, err)
		}
		if r != want[0] && (len(want) == 1 || r != want[1]) {
			return fmt.Errorf("%w: certificate table entry %d has the %v GUID but holds an %v certificate",
				attestation.ErrMalformed, i, want[0], r)
		}
		if err := s.add(r, der, c); err != nil {
			return err
		}
	}
	return nil
}

// parseCertList reads concatenated PEM and DER certificates.
func parseCertList(s *certSet, data []byte) error {
	for n := 0; ; n++ {
		data = bytes.TrimLeft(data, " \t\r\n")
		if len(data) == 0 {
			return nil
		}
		if n == maxCerts {
			return fmt.Errorf("%w: certificates: more than %d", attestation.ErrMalformed, maxCerts)
		}
		der, rest, err := nextCert(data, false)
		if err != nil {
			return fmt.Errorf("%w: certificate %d: %v", attestation.ErrMalformed, n+1, err)
		}
		c, r, err := parseClassify(der)
		if err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		if err := s.add(r, der, c); err != nil {
			return err
		}
		data = rest
	}
}

// nextCert returns the DER bytes of the PEM block or DER element at the
// start of data and what follows it. With padded, what follows may only be
// zero bytes or whitespace (certificate table entries are often padded).
func nextCert(data []byte, padded bool) (der, rest []byte, err error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN ")):
		var b *pem.Block
		b, rest = pem.Decode(trimmed)
		if b == nil {
			return nil, nil, fmt.Errorf("bad PEM block")
		}
		if b.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("PEM block is %q, want CERTIFICATE", b.Type)
		}
		der = b.Bytes
	case len(trimmed) > 0 && trimmed[0] == 0x30:
		var v asn1.RawValue
		rest, err = asn1.Unmarshal(trimmed, &v)
		if err != nil {
			return nil, nil, fmt.Errorf("bad DER: %v", err)
		}
		der = v.FullBytes
	case len(trimmed) == 0:
		return nil, nil, fmt.Errorf("empty")
	default:
		return nil, nil, fmt.Errorf("neither PEM nor DER (first byte 0x%02x)", trimmed[0])
	}
	if padded && len(bytes.Trim(rest, " \t\r\n\x00")) != 0 {
		return nil, nil, fmt.Errorf("%d bytes of trailing data after the certificate", len(rest))
	}
	return der, rest, nil
}

// parseClassify parses a DER certificate and names its role from its
// subject common name as AMD's KDS issues them (SEV-VCEK, SEV-VLEK,
// SEV-<product>, SEV-VLEK-<product>, ARK-<product>), falling back to the
// KDS extensions of endorsement keys.
func parseClassify(der []byte) (*x509.Certificate, role, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	cn := c.Subject.CommonName
	switch {
	case cn == "SEV-VCEK":
		return c, roleVCEK, nil
	case cn == "SEV-VLEK":
		return c, roleVLEK, nil
	case strings.HasPrefix(cn, "SEV-VLEK-"):
		return c, roleASVK, nil
	case strings.HasPrefix(cn, "ARK-"):
		return c, roleARK, nil
	case strings.HasPrefix(cn, "SEV-"):
		return c, roleASK, nil
	}
	if _, err := kds.VcekCertificateExtensions(c); err == nil {
		return c, roleVCEK, nil
	}
	if _, err := kds.VlekCertificateExtensions(c); err == nil {
		return c, roleVLEK, nil
	}
	return nil, 0, fmt.Errorf("%w: certificate %q is not an AMD VCEK, VLEK, ASK, ASVK or ARK", attestation.ErrMalformed, cn)
}

// pemBundle encodes the set as PEM, endorsement key first, root last.
func (s *certSet) pemBundle() []byte {
	var buf bytes.Buffer
	for _, r := range []role{roleVCEK, roleVLEK, roleASK, roleASVK, roleARK} {
		if der, ok := s.der[r]; ok {
			pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
	}
	return buf.Bytes()
}
