package main

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kura-cc/kura/attestation/azure"
	"github.com/kura-cc/kura/internal/captures"
)

// tpmCaptures is where attestation/tpm keeps its swtpm captures (rewritten
// by its TestSWTPMService -update).
const tpmCaptures = "../../attestation/tpm/testdata/swtpm"

// TestTPMScripts runs the scripts of testdata/tpm against the swtpm
// captures, copied into vectors/tpm, and the Compute Engine vTPM capture,
// in vectors/gce.
func TestTPMScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/tpm",
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, "cache"))
			dir := filepath.Join(env.WorkDir, "vectors", "tpm")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			entries, err := os.ReadDir(tpmCaptures)
			if err != nil {
				return err
			}
			for _, e := range entries {
				data, err := os.ReadFile(filepath.Join(tpmCaptures, e.Name()))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
					return err
				}
			}
			if err := writeCoCoTPM(dir); err != nil {
				return err
			}
			gce := captures.GCEvTPM()
			return writeFiles(filepath.Join(env.WorkDir, "vectors", "gce"), map[string][]byte{
				"ak.tpmt": gce.AKPublic, "ak-cert.der": gce.AKCert, "gce-ak-ca.pem": gce.CAs,
				"quote.bin": gce.Quote, "pcrs.bin": gce.PCRs, "binary_bios_measurements": gce.EventLog,
			})
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":   exits,
			"flipbit": flipbit,
		},
	})
}

// writeFiles writes files (name → content) into dir, creating it.
func writeFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeCoCoTPM writes dir/coco-evidence.json: the swtpm capture in dir as
// guest-components' TPM attester sends it.
func writeCoCoTPM(dir string) error {
	read := func(name string) []byte {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		return data
	}
	attest, sig, pcrs, err := azure.SplitTPMQuote(read("quote.bin"), read("pcrs.bin"))
	if err != nil {
		return err
	}
	rd, err := hex.DecodeString(strings.TrimSpace(string(read("qualifying_data.hex"))))
	if err != nil {
		return err
	}
	hexPCRs := make([]string, len(pcrs))
	for i, p := range pcrs {
		hexPCRs[i] = hex.EncodeToString(p)
	}
	std := base64.StdEncoding.EncodeToString
	data, err := json.Marshal(map[string]any{
		"report_data": std(rd), "ak_public": std(read("ak.tpmt")),
		"tpm_quote": map[string]any{"message": std(attest), "signature": std(sig), "pcrs": hexPCRs},
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "coco-evidence.json"), data, 0o644)
}
