package cli

import (
	"github.com/spf13/pflag"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/cca"
)

// ccaFlags are the flags of `attest verify --tee cca`.
type ccaFlags struct {
	token string
	cpaks []string
}

func (f *ccaFlags) registerCCA(fs *pflag.FlagSet) {
	fs.StringVar(&f.token, "token", "", "CCA: the attestation token (CBOR, tag 399: platform and realm tokens)")
	fs.StringArrayVar(&f.cpaks, "cpak", nil, "CCA: file of trusted platform attestation keys, PEM, JWK or CoMID JSON (repeatable; as --cca-cpak)")
}

// ccaBundle builds the bundle of `--tee cca --token FILE`: the raw token,
// with no runtime data.
func (f *ccaFlags) ccaBundle() (*attestation.Bundle, error) {
	if f.token == "" {
		return nil, usagef("--tee cca needs --token FILE (and --cpak FILE, the platform attestation key)")
	}
	token, err := readInput("--token", f.token)
	if err != nil {
		return nil, err
	}
	return cca.NewBundle(token)
}
