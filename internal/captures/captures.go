// Package captures holds real attestation evidence captured on AMD and Intel
// hardware, each capture once, for kura's tests and for `kura demo`, which
// verifies it offline. PROVENANCE.md says where every file comes from.
//
// The certificates and collateral in the captures have expired or will:
// verify each as of the time its accessor names. Every accessor returns a
// fresh copy, so a test may tamper with what it gets.
package captures

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

//go:embed snp tdx
var files embed.FS

// SNPMilan returns go-sev-guest's Milan SEV-SNP vector: the raw attestation
// report (version 2), the VCEK (DER) that signed it, and AMD's Milan
// ASK+ARK cert_chain (PEM). Its VCEK is valid from 2022-09-24 to
// 2029-09-24; kura verifies it as of 2023-06-01.
func SNPMilan() (report, vcek, askArk []byte) {
	return read("snp/milan/attestation.bin"), read("snp/milan/vcek.testcer"), read("snp/milan/milan.testcer")
}

// SNPGenoaTSM returns a Genoa SEV-SNP report (version 3) captured through
// Linux configfs-tsm, as the JSON that snp.ParseTSMReport reads: the report
// and the host's certificate table, whose VCEK is valid from 2025-04-20 to
// 2032-04-20; kura verifies it as of 2025-06-01.
func SNPGenoaTSM() []byte {
	return read("snp/genoa/sevsnp-tsm-report.json")
}

// TDXVectors returns the names of the TDX captures WriteTDX writes: "spr_e4",
// a v4 production quote from Sapphire Rapids E4 with its collateral of June
// 2023 (verified as of 2023-07-01), and "v5", a v5 quote with a TDX 1.5
// body whose PCK certificate is from January 2026 (verified as of
// 2026-02-03).
func TDXVectors() []string { return []string{"spr_e4", "v5"} }

// WriteTDX writes the TDX capture name (one of TDXVectors) into the existing
// directory dir, laid out as tdx.LoadCollateralDir reads it: quote.dat and
// the Intel PCS collateral, tcb_info.json, qe_identity.json, pck_crl.der,
// root_ca_crl.der and the three issuer chains. The two captures share all
// their collateral but tcb_info.json; the TCB info and QE identity issuer
// chains are the same chain (Intel's TCB Signing certificate under its
// root), kept once.
func WriteTDX(dir, name string) error {
	if !slices.Contains(TDXVectors(), name) {
		return fmt.Errorf("captures: no TDX capture %q", name)
	}
	for _, src := range []string{"tdx/" + name, "tdx/shared"} {
		sub, err := fs.Sub(files, src)
		if err != nil {
			return err
		}
		if err := os.CopyFS(dir, sub); err != nil {
			return fmt.Errorf("captures: %w", err)
		}
	}
	chain := read("tdx/tcb_signing_chain.pem")
	for _, n := range []string{"tcb_info_issuer_chain.pem", "qe_identity_issuer_chain.pem"} {
		if err := os.WriteFile(filepath.Join(dir, n), chain, 0o644); err != nil {
			return fmt.Errorf("captures: %w", err)
		}
	}
	return nil
}

// read returns an embedded file. The names are constants here, checked by
// this package's test, so a failure is a bug in this file.
func read(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}
