package main

import (
	"encoding/json"
	"fmt"

	"github.com/kura-cc/kura/internal/captures"
)

// ccaVectors returns Veraison's CCA token (made with test keys) as `kura
// attest verify --tee cca` reads it: cca-token.cbor, its CPAK as the CoMID
// that ties it to the platform (cca-cpak.json) and as bare PEM
// (cca-cpak.pem).
func ccaVectors() (map[string][]byte, error) {
	token, _ := captures.CCAToken()
	ta, _, _ := captures.CCACoMIDs()
	var comid struct {
		Triples struct {
			AVK []struct {
				Keys []struct{ Value string } `json:"verification-keys"`
			} `json:"attester-verification-keys"`
		} `json:"triples"`
	}
	if err := json.Unmarshal(ta, &comid); err != nil || len(comid.Triples.AVK) != 1 || len(comid.Triples.AVK[0].Keys) != 1 {
		return nil, fmt.Errorf("cca CoMID: want one key (%v)", err)
	}
	return map[string][]byte{
		"cca-token.cbor": token,
		"cca-cpak.json":  ta,
		"cca-cpak.pem":   []byte(comid.Triples.AVK[0].Keys[0].Value + "\n"),
	}, nil
}
