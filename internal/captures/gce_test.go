package captures

import (
	"io/fs"
	"testing"
)

// TestGCEAccessor checks that GCEvTPM reaches every embedded file and
// returns fresh copies.
func TestGCEAccessor(t *testing.T) {
	g := GCEvTPM()
	files := map[string][]byte{
		"gce/ak.tpmt": g.AKPublic, "gce/ak-cert.der": g.AKCert, "gce/gce-ak-ca.pem": g.CAs,
		"gce/quote.bin": g.Quote, "gce/pcrs.bin": g.PCRs, "gce/binary_bios_measurements": g.EventLog,
	}
	for name, b := range files {
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	if len(g.PCRs) != 24*32 {
		t.Errorf("PCRs are %d bytes, want 24 SHA-256 values", len(g.PCRs))
	}
	g.Quote[0] ^= 1
	if GCEvTPM().Quote[0] == g.Quote[0] {
		t.Error("GCEvTPM returned shared memory")
	}
	err := fs.WalkDir(gceFiles, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && files[p] == nil {
			t.Errorf("%s is embedded but GCEvTPM does not return it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
