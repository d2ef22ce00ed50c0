package cli

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/kura-cc/kura/collateral"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// verifyFlags configure verification, shared by `attest verify`,
// `verifier serve` and `serve`.
type verifyFlags struct {
	reference       string
	policy          string
	dev             bool
	at              string
	offline         bool
	cacheDir        string
	bundleDirs      []string
	checkRevocation bool
	ccaCPAKs        []string
	tpmAKs          []string
	tpmAKCAs        []string
	tpmEKCAs        []string      // serve commands with the verifier role only
	tpmAKValidity   time.Duration // likewise
}

func (v *verifyFlags) register(fs *pflag.FlagSet, g *globals) {
	fs.StringVar(&v.reference, "reference", g.envDefault("KURA_REFERENCE", ""), "reference values file, YAML or JSON (KURA_REFERENCE)")
	fs.StringVar(&v.policy, "policy", g.envDefault("KURA_POLICY", ""), "appraisal policy in Rego; default: kura's built-in policy (KURA_POLICY)")
	fs.BoolVar(&v.dev, "dev", g.envDefault("KURA_DEV", "") == "1", "dev mode: accept the INSECURE simulated TEE (KURA_DEV=1)")
	fs.StringVar(&v.at, "at", "", "verify certificates and collateral as of this RFC 3339 time instead of now")
	fs.BoolVar(&v.offline, "offline", g.envDefault("KURA_OFFLINE", "") == "1", "never fetch collateral from AMD KDS or Intel PCS (KURA_OFFLINE=1)")
	fs.StringVar(&v.cacheDir, "collateral-cache", g.envDefault("KURA_COLLATERAL_CACHE", defaultCacheDir(g)), "collateral cache directory; empty disables it (KURA_COLLATERAL_CACHE)")
	fs.StringArrayVar(&v.bundleDirs, "collateral-bundle", nil, "offline collateral bundle directory, read-only (repeatable)")
	fs.BoolVar(&v.checkRevocation, "check-revocation", false, "require CRLs and refuse revoked certificates")
	fs.StringArrayVar(&v.ccaCPAKs, "cca-cpak", nil, "Arm CCA: file of trusted platform attestation keys (CPAK): PEM, JWK or CoMID JSON (repeatable)")
	fs.StringArrayVar(&v.tpmAKs, "tpm-ak", nil, "TPM 2.0: PEM file of pinned attestation keys (RSA PUBLIC KEY blocks) whose quotes are trusted (repeatable)")
	fs.StringArrayVar(&v.tpmAKCAs, "tpm-ak-ca", nil, "TPM 2.0: PEM or DER file of certificate authorities whose AK certificates are trusted, roots and intermediates (repeatable; e.g. Google's vTPM AK CA)")
}

// registerPrivacyCA registers the flags of the verifier's TPM privacy CA,
// which only a server with the verifier role runs.
func (v *verifyFlags) registerPrivacyCA(fs *pflag.FlagSet) {
	fs.StringArrayVar(&v.tpmEKCAs, "tpm-ek-ca", nil, "TPM 2.0: PEM or DER file of TPM manufacturers' EK certificate authorities, roots and intermediates (repeatable): "+
		"the verifier then certifies attestation keys proven by credential activation to live in a TPM they certified (kura attest tpm-enroll), with a CA kept in <data>/tpm-ak-ca*.pem, and trusts those certificates")
	fs.DurationVar(&v.tpmAKValidity, "tpm-ak-validity", 0, "TPM 2.0: how long the attestation-key certificates of --tpm-ek-ca enrolment are valid (default 8760h, a year)")
}

func defaultCacheDir(g *globals) string {
	if d := g.env.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "kura", "collateral")
	}
	if h := g.env.Getenv("HOME"); h != "" {
		return filepath.Join(h, ".cache", "kura", "collateral")
	}
	return ""
}

// clock returns the verification clock for --at.
func (v *verifyFlags) clock() (func() time.Time, error) {
	if v.at == "" {
		return time.Now, nil
	}
	t, err := time.Parse(time.RFC3339, v.at)
	if err != nil {
		return nil, usagef("--at %q: want an RFC 3339 time such as 2024-06-01T00:00:00Z", v.at)
	}
	return func() time.Time { return t }, nil
}

// verification returns the verifier configuration the flags describe.
func (v *verifyFlags) verification() (server.Verification, error) {
	now, err := v.clock()
	if err != nil {
		return server.Verification{}, err
	}
	return server.Verification{
		ReferenceFile: v.reference, PolicyFile: v.policy, DevMode: v.dev, Now: now, CheckRevocations: v.checkRevocation, CCACPAKFiles: v.ccaCPAKs, TPMAKFiles: v.tpmAKs, TPMAKCAFiles: v.tpmAKCAs,
		TPMEKCAFiles: v.tpmEKCAs, TPMAKValidity: v.tpmAKValidity,
		Collateral: collateral.Config{CacheDir: v.cacheDir, OfflineDirs: v.bundleDirs, Online: !v.offline},
	}, nil
}

// service builds a verification service from the flags. issuer may be nil;
// nonces nil keeps issued nonces in memory.
func (v *verifyFlags) service(ctx context.Context, log *slog.Logger, issuer *token.Issuer, nonces verifier.NonceStore) (*verifier.Service, error) {
	cfg, err := v.verification()
	if err != nil {
		return nil, err
	}
	return cfg.Service(ctx, log, issuer, nonces)
}
