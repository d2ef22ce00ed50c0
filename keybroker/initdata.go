package keybroker

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
)

// kbsInitData is the init-data of a KBS protocol 0.4 Attestation: an
// Initdata document (Trustee's kbs/docs/initdata.md) and its encoding.
type kbsInitData struct {
	Format string `json:"format"`
	Body   string `json:"body"`
}

// initdataDocument is the Initdata document: a version, the hash algorithm
// whose digest of the document is bound into the TEE's init-data field,
// and the data, a map of strings.
type initdataDocument struct {
	Version   string            `toml:"version"`
	Algorithm string            `toml:"algorithm"`
	Data      map[string]string `toml:"data"`
}

// initData is a parsed init-data: its digest and the algorithm that made
// it.
type initData struct {
	algorithm string
	digest    []byte
}

// parseInitData parses a KBS Attestation's init-data as Trustee does: the
// format must be "toml"; the body must be an Initdata document with a
// version, an algorithm (sha256, sha384 or sha512) and a data table of
// strings (other keys are allowed: the digest covers them); the digest is
// the algorithm's hash of the body's bytes as sent. Absent or null
// init-data is nil.
func parseInitData(raw json.RawMessage) (*initData, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var in kbsInitData
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: init-data must be {\"format\": \"toml\", \"body\": <Initdata document>}: %v", ErrBadRequest, err)
	}
	if in.Format != "toml" {
		return nil, fmt.Errorf("%w: init-data format %q is not supported: it must be \"toml\"", ErrBadRequest, in.Format)
	}
	var doc initdataDocument
	md, err := toml.Decode(in.Body, &doc)
	if err != nil {
		return nil, fmt.Errorf("%w: init-data body is not an Initdata TOML document: %v", ErrBadRequest, err)
	}
	for _, k := range []string{"version", "algorithm", "data"} {
		if !md.IsDefined(k) {
			return nil, fmt.Errorf("%w: init-data body has no %q", ErrBadRequest, k)
		}
	}
	h, name := initdataHash(doc.Algorithm)
	if h == nil {
		return nil, fmt.Errorf("%w: init-data algorithm %q: want sha256, sha384 or sha512", ErrBadRequest, doc.Algorithm)
	}
	h.Write([]byte(in.Body))
	return &initData{algorithm: name, digest: h.Sum(nil)}, nil
}

// initdataHash returns the hash an Initdata algorithm names ("sha384",
// "SHA-384", ...) and its canonical name, or nil.
func initdataHash(name string) (hash.Hash, string) {
	switch strings.ReplaceAll(strings.ToLower(name), "-", "") {
	case "sha256":
		return sha256.New(), "sha256"
	case "sha384":
		return sha512.New384(), "sha384"
	case "sha512":
		return sha512.New(), "sha512"
	}
	return nil, ""
}

// check compares the init-data digest with the init-data field of the
// verified evidence, as Trustee's verifiers do: SNP's HOST_DATA (32 bytes)
// and TDX's MRCONFIGID (48 bytes) must equal the digest zero-padded or
// truncated to their size; Trustee sample evidence's init_data must equal
// it exactly. kura's own sim evidence has no such field, so it cannot carry
// init-data.
func (d *initData) check(tee attestation.TEE, claims map[string]any) error {
	var field string
	var size int
	switch tee {
	case attestation.SNP:
		field, size = "host_data", 32
	case attestation.TDX:
		field, size = "mr_config_id", 48
	case attestation.Sim:
		field = "init_data"
	default:
		return fmt.Errorf("%w: %s evidence has no init-data field", attestation.ErrBinding, tee)
	}
	sub, _ := claims[string(tee)].(map[string]any)
	got, _ := sub[field].(string)
	if tee == attestation.Sim && !sim.IsSampleClaims(claims) {
		return fmt.Errorf("%w: kura's sim evidence has no init-data field; send init-data with Trustee sample or hardware evidence", attestation.ErrBinding)
	}
	have, err := hex.DecodeString(got)
	if err != nil || size > 0 && len(have) != size {
		return fmt.Errorf("%w: evidence claims carry no %s %s", attestation.ErrBinding, tee, field)
	}
	want := d.digest
	if size > 0 {
		want = make([]byte, size) // zero-padded or truncated, as Trustee regularises it
		copy(want, d.digest)
	}
	if subtle.ConstantTimeCompare(have, want) != 1 {
		return fmt.Errorf("%w: init-data %s digest %x does not match the evidence's %s %x", attestation.ErrBinding, d.algorithm, d.digest, field, have)
	}
	return nil
}
