package cli

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/tpm"
	"github.com/kura-cc/kura/verifier"
)

type tpmEnrollFlags struct {
	verifierURL     string
	dev             teeDevice
	ekCert, ekChain string
	out             string
	json            bool
}

func newAttestTPMEnrollCmd(g *globals) *cobra.Command {
	f := &tpmEnrollFlags{}
	cl := &clientFlags{g: g, url: &f.verifierURL}
	cmd := &cobra.Command{
		Use:   "tpm-enroll",
		Short: "Have a verifier certify this TPM's attestation key, by credential activation",
		Long: `Have a kura verifier that knows the TPM's manufacturer (kura serve --tpm-ek-ca) certify the
TPM's attestation key (docs/spec/attestation.md §4.6): send it the TPM's EK certificate (--ek-cert,
else the one the manufacturer stored at NV index 0x01c00002) and the attestation key's public
area, recover with TPM2_ActivateCredential the secret it encrypted to the endorsement key for that
key, and send the secret back for the AK certificate. kura attest evidence --tee tpm --tpm-ak-cert
FILE then ships the certificate, and verifiers that trust the verifier's AK CA
(GET /v1/attestation/tpm/ak-ca, --tpm-ak-ca) trust the quote without pinning the key.

--json prints {certificate, serial, issuer, not_before, not_after, ak_sha256, ek_sha256} (the
certificate is the -o path, or the PEM when there is no -o). Exits 3 when the verifier refuses
the EK certificate or the key (4 when the EK certificate has expired), 5 when activation fails
(the credential was not made for this TPM's endorsement key and attestation key) or the challenge
went stale, 1 otherwise.`,
		Example: `  kura attest tpm-enroll --verifier https://verifier.example:8443 -o ak-cert.pem
  kura attest tpm-enroll --verifier https://verifier.example:8443 --ek-cert ek.der --ek-chain vendor-intermediate.pem -o ak-cert.pem
  kura attest evidence --tee tpm --tpm-ak-cert ak-cert.pem --nonce "$nonce" -o bundle.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTPMEnroll(cmd.Context(), f, cl, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.verifierURL, "verifier", g.envDefault("KURA_URL", ""), urlHelp("the verifier's URL", "KURA_URL"))
	cl.addCA(cmd, false)
	fs.StringVar(&f.dev.tpm, "tpm-device", "", "the TPM, a device or a TPM emulator's Unix socket (default /dev/tpmrm0)")
	fs.Uint32Var(&f.dev.akHandle, "tpm-ak-handle", 0, "persistent handle of the attestation key, e.g. 0x81010001 (default: an endorsement-hierarchy key, the same every time, as kura attest evidence --tee tpm uses)")
	fs.StringVar(&f.ekCert, "ek-cert", "", "the TPM's RSA EK certificate, PEM or DER (default: read from NV index 0x01c00002)")
	fs.StringVar(&f.ekChain, "ek-chain", "", "intermediate certificates between the EK certificate and the manufacturer's root, PEM or DER")
	fs.StringVarP(&f.out, "output", "o", "", "write the AK certificate (PEM) here instead of standard output")
	fs.BoolVar(&f.json, "json", false, jsonFlagHelp)
	return cmd
}

// tpmEnrollReport is what `kura attest tpm-enroll --json` prints.
type tpmEnrollReport struct {
	Certificate string    `json:"certificate"`
	Serial      string    `json:"serial"`
	Issuer      string    `json:"issuer"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	AKSHA256    string    `json:"ak_sha256"`
	EKSHA256    string    `json:"ek_sha256"`
}

func runTPMEnroll(ctx context.Context, f *tpmEnrollFlags, cl *clientFlags, stdout, stderr io.Writer) error {
	hc, err := cl.resolve()
	if err != nil {
		return err
	}
	var ekCert []byte
	var chain [][]byte
	if f.ekCert != "" {
		certs, err := readCerts("--ek-cert", f.ekCert)
		if err != nil {
			return err
		}
		ekCert = certs[0].Raw
		for _, c := range certs[1:] {
			chain = append(chain, c.Raw)
		}
	}
	if f.ekChain != "" {
		certs, err := readCerts("--ek-chain", f.ekChain)
		if err != nil {
			return err
		}
		for _, c := range certs {
			chain = append(chain, c.Raw)
		}
	}
	a, err := tpm.NewAttester(tpm.AttesterConfig{Device: f.dev.tpm, AKHandle: tpm2.TPMHandle(f.dev.akHandle)})
	if err != nil {
		return err
	}
	defer a.Close()
	if ekCert == nil {
		if ekCert, err = a.EKCertificate(); err != nil {
			return fmt.Errorf("%w (--ek-cert FILE)", err)
		}
	}
	parsed, err := x509.ParseCertificate(ekCert)
	if err != nil {
		return fmt.Errorf("%w: the EK certificate: %v", attestation.ErrMalformed, err)
	}
	ek, err := a.EndorsementKey()
	if err != nil {
		return err
	}
	if k, ok := parsed.PublicKey.(*rsa.PublicKey); !ok || !k.Equal(ek) {
		return fmt.Errorf("%w: the EK certificate (issuer %q, serial %x) does not certify this TPM's RSA endorsement key: it belongs to another TPM, or is an ECC EK's (kura activates credentials with the RSA EK)",
			attestation.ErrBinding, parsed.Issuer.String(), parsed.SerialNumber)
	}
	akPublic, err := a.AttestationKeyPublic()
	if err != nil {
		return err
	}
	vc := &verifier.Client{BaseURL: f.verifierURL, HTTP: hc}
	certPEM, err := vc.EnrollAK(ctx, ekCert, chain, akPublic, a.ActivateCredential)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	ak, err := a.AttestationKey()
	if err != nil {
		return err
	}
	if !ak.Equal(cert.PublicKey) {
		return fmt.Errorf("%w: the verifier certified another key than this TPM's attestation key", attestation.ErrBinding)
	}
	if f.out != "" {
		if err := os.WriteFile(f.out, certPEM, 0o644); err != nil {
			return err
		}
	}
	akDER, _ := x509.MarshalPKIXPublicKey(ak)
	akSum, ekSum := sha256.Sum256(akDER), sha256.Sum256(ekCert)
	rep := tpmEnrollReport{Certificate: f.out, Serial: hex.EncodeToString(cert.SerialNumber.Bytes()), Issuer: cert.Issuer.String(),
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), AKSHA256: hex.EncodeToString(akSum[:]), EKSHA256: hex.EncodeToString(ekSum[:])}
	switch {
	case f.json:
		if f.out == "" {
			rep.Certificate = string(certPEM)
		}
		return printJSON(stdout, rep)
	case f.out == "":
		_, err = stdout.Write(certPEM)
		fmt.Fprintf(stderr, "kura: attestation key certified by %q, serial %s, until %s\n", rep.Issuer, rep.Serial, rep.NotAfter.Format(time.RFC3339))
		return err
	}
	fmt.Fprintf(stdout, "attestation key certified by %q, serial %s, until %s\nAK certificate: %s\n", rep.Issuer, rep.Serial, rep.NotAfter.Format(time.RFC3339), f.out)
	return nil
}

// readCerts reads a file of certificates, PEM CERTIFICATE blocks or DER
// one after the other, named by flag.
func readCerts(flag, path string) ([]*x509.Certificate, error) {
	data, err := readInput(flag, path)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		certs, err := x509.ParseCertificates(data)
		if err != nil || len(certs) == 0 {
			return nil, usagef("%s %s: want PEM or DER certificates (%v)", flag, path, err)
		}
		return certs, nil
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, usagef("%s %s: PEM block %q, want CERTIFICATE", flag, path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, usagef("%s %s: %v", flag, path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 || len(bytes.TrimSpace(data)) > 0 {
		return nil, usagef("%s %s: want PEM CERTIFICATE blocks and nothing else", flag, path)
	}
	return certs, nil
}

// certAttester ships certs, PEM, with the bundles of the attester it wraps
// (--tpm-ak-cert).
type certAttester struct {
	attestation.Attester
	certs []byte
}

// Attest attests and adds the certificates.
func (c certAttester) Attest(ctx context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	b, err := c.Attester.Attest(ctx, reportData)
	if err != nil {
		return nil, err
	}
	b.Certs = c.certs
	return b, b.Check()
}

// withAKCert returns the attesters with the tpm one's bundles carrying the
// AK certificate in path (and any intermediates after it), as PEM; the
// certificate must be for that attester's key.
func withAKCert(path string, primary attestation.Attester, devices []attestation.DeviceAttester) (attestation.Attester, []attestation.DeviceAttester, error) {
	certs, err := readCerts("--tpm-ak-cert", path)
	if err != nil {
		return nil, nil, err
	}
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	wrap := func(a attestation.Attester) (attestation.Attester, bool, error) {
		ta, ok := a.(*tpm.Attester)
		if !ok {
			return a, false, nil
		}
		k, err := ta.AttestationKey()
		if err != nil {
			return nil, false, err
		}
		if !k.Equal(certs[0].PublicKey) {
			return nil, false, usagef("--tpm-ak-cert %s certifies another key than the TPM's attestation key (enrol this one with kura attest tpm-enroll)", path)
		}
		return certAttester{Attester: a, certs: out}, true, nil
	}
	primary, found, err := wrap(primary)
	if err != nil {
		return nil, nil, err
	}
	for i, d := range devices {
		a, ok, err := wrap(d.Attester)
		if err != nil {
			return nil, nil, err
		}
		devices[i].Attester, found = a, found || ok
	}
	if !found {
		return nil, nil, usagef("--tpm-ak-cert: only --tee tpm or a --device NAME=tpm has an attestation key to certify")
	}
	return primary, devices, nil
}
