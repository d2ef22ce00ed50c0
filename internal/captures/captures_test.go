package captures

import (
	"bytes"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAccessors checks that the accessors reach every embedded file, and
// that WriteTDX writes the layout tdx.LoadCollateralDir reads.
func TestAccessors(t *testing.T) {
	report, vcek, askArk := SNPMilan()
	for name, b := range map[string][]byte{"report": report, "vcek": vcek, "askArk": askArk, "genoa": SNPGenoaTSM()} {
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	reached := map[string]bool{
		"snp/milan/attestation.bin":        true,
		"snp/milan/vcek.testcer":           true,
		"snp/milan/milan.testcer":          true,
		"snp/genoa/sevsnp-tsm-report.json": true,
		"tdx/tcb_signing_chain.pem":        true, // written as both issuer chains, checked below
	}
	chain, err := files.ReadFile("tdx/tcb_signing_chain.pem")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"pck_crl.der", "pck_crl_issuer_chain.pem", "qe_identity.json", "qe_identity_issuer_chain.pem",
		"quote.dat", "root_ca_crl.der", "tcb_info.json", "tcb_info_issuer_chain.pem",
	}
	for _, name := range TDXVectors() {
		dir := t.TempDir()
		if err := WriteTDX(dir, name); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Name())
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil || len(b) == 0 {
				t.Errorf("%s/%s: %d bytes, %v", name, e.Name(), len(b), err)
			}
			if strings.HasSuffix(e.Name(), "_issuer_chain.pem") && e.Name() != "pck_crl_issuer_chain.pem" && !bytes.Equal(b, chain) {
				t.Errorf("%s/%s is not the TCB signing chain", name, e.Name())
			}
			for _, src := range []string{"tdx/" + name, "tdx/shared"} {
				if _, err := fs.Stat(files, path.Join(src, e.Name())); err == nil {
					reached[path.Join(src, e.Name())] = true
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("WriteTDX(%s) wrote %v, want %v", name, got, want)
		}
	}
	if err := WriteTDX(t.TempDir(), "shared"); err == nil {
		t.Error("WriteTDX wrote an unknown capture")
	}
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !reached[p] {
			t.Errorf("%s is embedded but no accessor returns it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFreshCopies checks that tampering with what an accessor returned
// leaves the next caller's copy intact.
func TestFreshCopies(t *testing.T) {
	report, _, _ := SNPMilan()
	report[0] ^= 1
	if again, _, _ := SNPMilan(); again[0] == report[0] {
		t.Error("SNPMilan returned shared memory")
	}
}
