package captures

import (
	"bytes"
	"io/fs"
	"testing"
)

// TestNVIDIAAccessors checks that the NVIDIA accessor reaches every
// embedded NVIDIA file and returns fresh copies.
func TestNVIDIAAccessors(t *testing.T) {
	report, chain, root, nonce := NVIDIAHopper()
	for name, b := range map[string][]byte{"report": report, "chain": chain, "root": root} {
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	if len(report) != 4117 || report[0] != 0x11 || report[1] != 0xe0 {
		t.Errorf("report is %d bytes starting % x, want 4117 starting 11 e0 (SPDM 1.1 GET_MEASUREMENTS)", len(report), report[:2])
	}
	if len(nonce) != 32 || !bytes.Equal(report[4:36], nonce) {
		t.Errorf("nonce %x is not the report's request nonce %x", nonce, report[4:36])
	}
	if n := bytes.Count(chain, []byte("-----BEGIN CERTIFICATE-----")); n != 5 {
		t.Errorf("chain has %d certificates, want 5", n)
	}
	report[0] ^= 1
	nonce[0] ^= 1
	if again, _, _, n := NVIDIAHopper(); again[0] == report[0] || n[0] == nonce[0] {
		t.Error("NVIDIAHopper returned shared memory")
	}
	reached := map[string]bool{
		"nvidia/hopper-report.bin": true, "nvidia/hopper-cert-chain.pem": true, "nvidia/nvidia-device-root.pem": true,
	}
	err := fs.WalkDir(nvidiaFiles, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !reached[p] {
			t.Errorf("%s is embedded but no accessor returns it", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
