package cli

import (
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"

	"github.com/spf13/pflag"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/attestation/tpm"
)

// tpmFlags are the flags of `attest verify --tee tpm`; --quote and --pcrs
// are shared with the Azure vTPM TEEs.
type tpmFlags struct {
	aks              []string
	akPublic         string
	akCert           string
	eventLog, imaLog string
}

func (f *tpmFlags) registerTPM(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.aks, "ak", nil, "tpm: PEM file of pinned attestation keys (repeatable; as --tpm-ak)")
	fs.StringVar(&f.akPublic, "ak-public", "", "tpm: the quoting key's public area, TPM2B_PUBLIC (tpm2_readpublic -o) or TPMT_PUBLIC; default: the one key --ak pins")
	fs.StringVar(&f.akCert, "ak-cert", "", "tpm: the attestation key's certificate, then any intermediates (PEM or DER), checked against --tpm-ak-ca instead of pinning the key")
	fs.StringVar(&f.eventLog, "event-log", "", "tpm: TCG PC Client event log to replay (/sys/kernel/security/tpm0/binary_bios_measurements); tdx: the CCEL event log to replay to RTMR0-3 (/sys/firmware/acpi/tables/data/CCEL)")
	fs.StringVar(&f.imaLog, "ima-log", "", "tpm: IMA measurement list to replay (/sys/kernel/security/ima/ascii_runtime_measurements)")
}

// tpmBundle builds the bundle of `--tee tpm --quote FILE --pcrs FILE --ak
// FILE` (or --ak-cert FILE): the AK (--ak-public, or the key of the one
// --ak or --ak-cert, as PKIX), its certificates, the quote and its PCR
// values, and the event logs given.
func (f *attestVerifyFlags) tpmBundle() (*attestation.Bundle, error) {
	switch {
	case f.quote == "" || f.pcrs == "" || len(f.aks)+len(f.tpmAKs) == 0 && f.akCert == "":
		return nil, usagef("--tee tpm needs --quote FILE (TPMS_ATTEST then TPMT_SIGNATURE), --pcrs FILE and --ak FILE (the pinned attestation key, PEM) or --ak-cert FILE (its certificate, with --tpm-ak-ca)")
	case f.report != "" || f.tsm != "" || f.hclReport != "":
		return nil, usagef("--tee tpm takes --quote, --pcrs, --ak, --ak-cert, --ak-public, --event-log and --ima-log")
	}
	in := map[string][]byte{}
	for flag, path := range map[string]string{"--quote": f.quote, "--pcrs": f.pcrs, "--ak-public": f.akPublic, "--ak-cert": f.akCert, "--event-log": f.eventLog, "--ima-log": f.imaLog} {
		if path == "" {
			continue
		}
		data, err := readInput(flag, path)
		if err != nil {
			return nil, err
		}
		in[flag] = data
	}
	ak := in["--ak-public"]
	if len(ak) > 2 && int(binary.BigEndian.Uint16(ak)) == len(ak)-2 {
		ak = ak[2:] // a TPM2B_PUBLIC: its TPMT_PUBLIC
	}
	if ak == nil && f.akCert != "" {
		certs, err := x509.ParseCertificates(in["--ak-cert"])
		if block, _ := pem.Decode(in["--ak-cert"]); block != nil && block.Type == "CERTIFICATE" {
			certs, err = x509.ParseCertificates(block.Bytes)
		}
		if err != nil || len(certs) == 0 {
			return nil, usagef("--ak-cert %s: want a PEM or DER certificate (%v)", f.akCert, err)
		}
		ak = certs[0].RawSubjectPublicKeyInfo
	}
	if ak == nil {
		files := append(append([]string{}, f.aks...), f.tpmAKs...)
		keys, err := tpm.LoadAKs(files[0])
		if err != nil {
			return nil, usageError{err}
		}
		if len(keys) != 1 || len(files) != 1 {
			return nil, usagef("--ak pins more than one key: name the quoting key with --ak-public FILE (its TPMT_PUBLIC)")
		}
		if ak, err = x509.MarshalPKIXPublicKey(keys[0]); err != nil {
			return nil, usageError{err}
		}
	}
	attest, sig, pcrs, err := azure.SplitTPMQuote(in["--quote"], in["--pcrs"])
	if err != nil {
		return nil, err
	}
	b, err := tpm.NewBundle(ak, attest, sig, pcrs, in["--event-log"], in["--ima-log"])
	if err != nil {
		return nil, err
	}
	b.Certs = in["--ak-cert"]
	return b, nil
}
