package main

import (
	"bytes"
	"os"
	"path/filepath"

	"github.com/kura-cc/kura/attestation/tdx"
)

// writeTDXCollateralJSON writes the collateral of the TDX capture in colDir
// into dir as dcap-qvl's one-object JSON, tdx-spr-collateral.json, and a
// copy whose TCB info signature is altered, tdx-spr-collateral-bad.json.
func writeTDXCollateralJSON(dir, colDir string) error {
	col, err := tdx.LoadCollateralDir(colDir)
	if err != nil {
		return err
	}
	data, err := tdx.MarshalCollateralJSON(col)
	if err != nil {
		return err
	}
	key := []byte(`"tcb_info_signature":"`)
	i := bytes.Index(data, key) + len(key)
	bad := bytes.Clone(data)
	bad[i] = map[bool]byte{true: '0', false: '1'}[bad[i] != '0']
	if err := os.WriteFile(filepath.Join(dir, "tdx-spr-collateral.json"), data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "tdx-spr-collateral-bad.json"), bad, 0o644)
}
