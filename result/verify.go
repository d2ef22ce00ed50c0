package result

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/token"
)

// Trust is what a receiver or auditor trusts when verifying offline.
type Trust struct {
	// Verifiers are the keys of the attestation verifiers whose tokens
	// are accepted (a JWKS, or one pinned key).
	Verifiers jwk.Set
	// DevMode accepts results from the INSECURE simulated TEE.
	DevMode bool
	// Reverify, when set, verifies the hardware evidence again (chain to
	// the vendor root, collateral, binding), on top of trusting the
	// verifier's token.
	Reverify func(ctx context.Context, b *attestation.Bundle) error
	// Log, when set, is the transparency log's key: the file must embed a
	// proof that it is in that log (docs/spec/auditlog.md).
	Log note.Verifier
}

// Attested is what verification established about the run that produced a
// bundle or receipt.
type Attested struct {
	Run         *collab.RunContext
	Manifest    *collab.Manifest
	TEE         string
	Measurement string
	Status      string // the verifier's appraisal: affirming, warning...
	Insecure    bool   // the simulated TEE: proves nothing
	// Checks lists what was verified, in order, for display.
	Checks []string

	collab *collab.Collaboration
}

// attestedRun checks that run, evidence and token belong together and come
// from a worker the collaboration approved:
//   - the token is signed by a trusted verifier and was valid at signedAt;
//   - the token binds exactly these run-context bytes and the evidence's
//     runtime data;
//   - the TEE is affirmed (or sim, in dev mode only);
//   - the measurement is in the manifest's worker reference values;
//   - the collaboration verifies and the manifest is the one the run names.
func attestedRun(ctx context.Context, run []byte, signedAt time.Time, evidence json.RawMessage, ear string, collabFile json.RawMessage, t Trust) (*Attested, error) {
	rc, err := collab.ParseRunContext(run)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	a := &Attested{Run: rc}
	if t.Verifiers == nil || t.Verifiers.Len() == 0 {
		return nil, fmt.Errorf("%w: no trusted verifier keys: pass the verifier's JWKS", ErrUntrusted)
	}
	tv, err := token.NewVerifier(token.VerifierConfig{Keys: t.Verifiers, Now: func() time.Time { return signedAt }})
	if err != nil {
		return nil, err
	}
	claims, err := tv.Verify(ctx, []byte(ear))
	if err != nil {
		return nil, fmt.Errorf("%w: attestation token: %w", ErrUntrusted, err)
	}
	a.Checks = append(a.Checks, "attestation token signed by a trusted verifier, valid at "+signedAt.UTC().Format(time.RFC3339))
	if !bytes.Equal(claims.RuntimeContext, run) {
		return nil, fmt.Errorf("%w: the attestation token binds a different run context", ErrUntrusted)
	}
	a.Checks = append(a.Checks, "token binds this run (manifest, analysis, run id, signing key)")

	b, err := attestation.ParseBundle(evidence)
	if err != nil {
		return nil, fmt.Errorf("%w: evidence: %w", ErrMalformed, err)
	}
	if !bytes.Equal(b.RuntimeData.Context, run) || !bytes.Equal(b.RuntimeData.PublicKey, claims.RuntimePublicKey) || !bytes.Equal(b.RuntimeData.Nonce, claims.Nonce) {
		return nil, fmt.Errorf("%w: the evidence's runtime data is not the one the token was issued for", ErrUntrusted)
	}
	if t.Reverify != nil {
		if err := t.Reverify(ctx, b); err != nil {
			return nil, fmt.Errorf("%w: evidence: %w", ErrUntrusted, err)
		}
		a.Checks = append(a.Checks, "hardware evidence re-verified")
	}
	a.Checks = append(a.Checks, "evidence runtime data matches the token")

	cpu, ok := claims.Submods["cpu0"]
	if !ok {
		return nil, fmt.Errorf("%w: token has no cpu0 appraisal", ErrUntrusted)
	}
	a.Status = cpu.Status.String()
	a.TEE, _ = cpu.Evidence["tee"].(string)
	a.Measurement, _ = cpu.Evidence["measurement"].(string)
	a.Insecure, _ = cpu.Evidence["insecure"].(bool)
	switch {
	case a.TEE == string(attestation.Sim) || a.Insecure:
		if !t.DevMode {
			return nil, fmt.Errorf("%w: INSECURE: the run used the simulated TEE, which proves nothing; refused outside dev mode", ErrUntrusted)
		}
		a.Checks = append(a.Checks, "INSECURE simulated TEE accepted (dev mode)")
	case a.Status != "affirming":
		return nil, fmt.Errorf("%w: the verifier appraised the worker as %s, not affirming", ErrUntrusted, a.Status)
	default:
		a.Checks = append(a.Checks, "verifier appraisal: affirming")
	}

	c, err := collab.ParseCollaboration(collabFile)
	if err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrMalformed, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrUntrusted, err)
	}
	m := c.Current()
	if h := m.Hash(); h != rc.ManifestHash {
		return nil, fmt.Errorf("%w: the run is for manifest %s but the collaboration's current version is %s", ErrUntrusted, rc.ManifestHash, h)
	}
	if m.ID != rc.Collaboration {
		return nil, fmt.Errorf("%w: the run is for collaboration %q, the file is %q", ErrUntrusted, rc.Collaboration, m.ID)
	}
	a.Manifest, a.collab = m, c
	a.Checks = append(a.Checks, "collaboration history and approvals' signatures verify; manifest "+rc.ManifestHash[:16]+"…")
	if err := m.CheckWorker(a.TEE, cpu.Evidence); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	a.Checks = append(a.Checks, "worker measurement (and TCB, where set) meets the manifest's reference values")
	return a, nil
}

// checkApprovals checks that every owner of a dataset the analysis reads
// approved it, with the signing key on that owner's card.
func checkApprovals(c *collab.Collaboration, m *collab.Manifest, analysisID string) error {
	an := m.Analysis(analysisID)
	if an == nil {
		return fmt.Errorf("%w: analysis %q is not in the manifest", ErrUntrusted, analysisID)
	}
	for _, owner := range readOwners(m, an) {
		if err := c.CheckApproved(ed25519.PublicKey(owner.Card.SigningKey), analysisID); err != nil {
			return fmt.Errorf("%w: %w", ErrUntrusted, err)
		}
	}
	return nil
}

// readOwners returns the parties owning the datasets an analysis reads.
func readOwners(m *collab.Manifest, an *collab.Analysis) []*collab.Party {
	var out []*collab.Party
	seen := map[string]bool{}
	for _, id := range collab.ReadsOf(an) {
		ds := m.Dataset(id)
		if ds == nil || seen[ds.Owner] {
			continue
		}
		seen[ds.Owner] = true
		if p := m.Party(ds.Owner); p != nil {
			out = append(out, p)
		}
	}
	return out
}
