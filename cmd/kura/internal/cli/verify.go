package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/kura-cc/kura/appraisal"
	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/collateral"
	"github.com/kura-cc/kura/store"
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

// service builds a verification service from the flags. issuer may be nil;
// nonces nil keeps issued nonces in memory.
func (v *verifyFlags) service(ctx context.Context, log *slog.Logger, issuer *token.Issuer, nonces store.Ephemeral) (*verifier.Service, error) {
	now, err := v.clock()
	if err != nil {
		return nil, err
	}
	var ref *appraisal.ReferenceValues
	if v.reference != "" {
		if ref, err = appraisal.LoadReferenceValues(v.reference); err != nil {
			return nil, usageError{err}
		}
	}
	var policy string
	if v.policy != "" {
		data, err := os.ReadFile(v.policy)
		if err != nil {
			return nil, usagef("--policy: %w", err)
		}
		policy = string(data)
	}
	ap, err := appraisal.New(ctx, appraisal.Config{Policy: policy, Reference: ref, DevMode: v.dev})
	if err != nil {
		return nil, usageError{err}
	}
	getter, err := collateral.New(collateral.Config{
		CacheDir:    v.cacheDir,
		OfflineDirs: v.bundleDirs,
		Online:      !v.offline,
		Logger:      log,
	})
	if err != nil {
		return nil, usageError{fmt.Errorf("collateral: %w", err)}
	}
	snpV, err := snp.NewVerifier(snp.Config{Getter: getter, Now: now, CheckRevocations: v.checkRevocation, Logger: log})
	if err != nil {
		return nil, err
	}
	tdxV, err := tdx.NewVerifier(tdx.Config{Getter: getter, Now: now, CheckRevocations: v.checkRevocation, Logger: log})
	if err != nil {
		return nil, err
	}
	simV, err := sim.NewVerifier(sim.Config{})
	if err != nil {
		return nil, err
	}
	return verifier.New(verifier.Config{
		TEEs:      map[attestation.TEE]attestation.Verifier{attestation.SNP: snpV, attestation.TDX: tdxV, attestation.Sim: simV},
		Appraiser: ap,
		Issuer:    issuer,
		Nonces:    nonces,
		Logger:    log,
	})
}

// loadOrCreateKey reads the verifier's ECDSA signing key from a PEM file,
// creating a P-256 key there (mode 0600) when the file does not exist.
// An empty path gives an ephemeral key.
func loadOrCreateKey(path string, log *slog.Logger) (*ecdsa.PrivateKey, error) {
	if path == "" {
		log.Warn("token signing key is ephemeral: tokens cannot be verified after a restart; set --key")
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create signing key: %w", err)
		}
		if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Close()); err != nil {
			return nil, fmt.Errorf("write signing key: %w", err)
		}
		log.Info("created token signing key", "path", path)
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		if k, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", path, err)
		}
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: %T, want an ECDSA P-256 or P-384 key", path, k)
	}
	return key, nil
}
