package captures

import (
	"io/fs"
	"testing"
)

// TestCCAAccessors checks that the CCA accessors reach every embedded CCA
// file and return fresh copies.
func TestCCAAccessors(t *testing.T) {
	token, claims := CCAToken()
	ta, platform, realm := CCACoMIDs()
	for name, b := range map[string][]byte{"token": token, "claims": claims, "ta": ta, "platform": platform, "realm": realm} {
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	if token[0] != 0xd9 || token[1] != 0x01 || token[2] != 0x8f {
		t.Errorf("token starts % x, want tag 399 (d9 01 8f)", token[:3])
	}
	token[0] ^= 1
	if again, _ := CCAToken(); again[0] == token[0] {
		t.Error("CCAToken returned shared memory")
	}
	reached := map[string]bool{
		"cca/cca-evidence.cbor": true, "cca/cca-evidence.json": true, "cca/comid-cca-ta.json": true,
		"cca/comid-cca-refval.json": true, "cca/comid-cca-realm-refval.json": true,
	}
	err := fs.WalkDir(ccaFiles, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !reached[p] {
			t.Errorf("%s is embedded but no accessor returns it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
