package result

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/token"
)

// Trust is what a receiver or auditor trusts when verifying offline
// (docs/spec/cleanroom.md §7).
type Trust struct {
	// Verifiers, when set, are the keys of the attestation verifiers whose
	// tokens are accepted (a JWKS, or pinned keys), instead of the
	// manifest's verifier list: the verifying party names them itself.
	Verifiers jwk.Set
	// Party is the signing key of the party verifying. Without Verifiers,
	// the manifest's verifier list is trusted only when this party's own
	// valid approval covers the run's manifest version: the party signed
	// that list. Someone who approved nothing names Verifiers instead.
	Party ed25519.PublicKey
	// FetchJWKS fetches the keys a listed verifier publishes at its
	// jwks_url. Nil leaves such verifiers out: only pinned keys count.
	FetchJWKS func(ctx context.Context, url string) (jwk.Set, error)
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
	// Verifier names the verifier whose token the run carries: its name in
	// the manifest's list, or "a verifier you named" (Trust.Verifiers).
	Verifier string
	// Checks lists what was verified, in order, for display.
	Checks []string
	collab *collab.Collaboration
}

// namedByYou is how a verifier given in Trust.Verifiers is named.
const namedByYou = "a verifier you named"

// attestedRun checks that run, evidence and token belong together and come
// from a worker the collaboration approved:
//   - the collaboration verifies and its current manifest is the one the
//     run names;
//   - the token is signed by a trusted verifier — one of the manifest's,
//     which the verifying party approved, or one it named — and was valid
//     at signedAt;
//   - the token binds exactly these run-context bytes and the evidence's
//     runtime data;
//   - the TEE is affirmed (or sim, in dev mode only);
//   - the measurement is in the manifest's worker reference values.
func attestedRun(ctx context.Context, run []byte, signedAt time.Time, evidence json.RawMessage, ear string, collabFile json.RawMessage, t Trust) (*Attested, error) {
	rc, err := collab.ParseRunContext(run)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	a := &Attested{Run: rc}
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
	keys, err := t.verifierKeys(ctx, c, a)
	if err != nil {
		return nil, err
	}
	tv, err := token.NewVerifier(token.VerifierConfig{Keys: keys.set, Now: func() time.Time { return signedAt }})
	if err != nil {
		return nil, err
	}
	claims, err := tv.Verify(ctx, []byte(ear))
	var untrusted *token.KeyError
	switch {
	case errors.As(err, &untrusted):
		return nil, fmt.Errorf("%w: attestation token: %w; %s", ErrUntrusted, err, keys.describe())
	case err != nil:
		return nil, fmt.Errorf("%w: attestation token: %w", ErrUntrusted, err)
	}
	a.Verifier = keys.names[claims.KeyID]
	by := a.Verifier
	if keys.fromList {
		by = fmt.Sprintf("verifier %q of the manifest's list", a.Verifier)
	}
	a.Checks = append(a.Checks, fmt.Sprintf("attestation token signed by %s (key %s), valid at %s", by, claims.KeyID, signedAt.UTC().Format(time.RFC3339)))
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
	if err := m.CheckWorker(a.TEE, cpu.Evidence); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	a.Checks = append(a.Checks, "worker measurement (and TCB, where set) meets the manifest's reference values")
	return a, nil
}

// trustedKeys are the verifier keys a token is checked against, with the
// name of the verifier each key belongs to.
type trustedKeys struct {
	set   jwk.Set
	names map[string]string // token.KeyIDOf(key) -> verifier name
	// tried describes each verifier for an error: its name and key ids,
	// or why it has none.
	tried    []string
	fromList bool
}

// describe says which verifiers a refused token was checked against.
func (k *trustedKeys) describe() string {
	if !k.fromList {
		return "trusted: the verifiers you named"
	}
	return "the manifest's verifiers: " + strings.Join(k.tried, "; ")
}

// add adds the keys of the verifier named name.
func (k *trustedKeys) add(name string, s jwk.Set) error {
	var ids []string
	for i := range s.Len() {
		key, _ := s.Key(i)
		id := token.KeyIDOf(key)
		if err := k.set.AddKey(key); err != nil {
			return fmt.Errorf("verifier %q: %w", name, err)
		}
		k.names[id] = name
		ids = append(ids, id)
	}
	k.tried = append(k.tried, fmt.Sprintf("%s (keys %s)", name, strings.Join(ids, ", ")))
	return nil
}

// verifierKeys returns the keys a run's token must verify under: the ones
// the party named (Trust.Verifiers), or else those of the manifest's
// verifier list, provided the party's own approval covers the list.
func (t Trust) verifierKeys(ctx context.Context, c *collab.Collaboration, a *Attested) (*trustedKeys, error) {
	k := &trustedKeys{set: jwk.NewSet(), names: map[string]string{}}
	if t.Verifiers != nil && t.Verifiers.Len() > 0 {
		for i := range t.Verifiers.Len() {
			key, _ := t.Verifiers.Key(i)
			k.names[token.KeyIDOf(key)] = namedByYou
		}
		k.set = t.Verifiers
		return k, nil
	}
	m := c.Current()
	if len(m.Verifiers) == 0 {
		return nil, fmt.Errorf("%w: manifest version %d (format %d) lists no verifiers: name the verifiers you trust yourself", ErrUntrusted, len(c.Versions), m.Format)
	}
	if len(t.Party) == 0 {
		return nil, fmt.Errorf("%w: the manifest's verifier list counts only for a party whose own approval covers it: give your party identity, or name the verifiers you trust yourself", ErrUntrusted)
	}
	if err := c.CheckPartyApproved(t.Party); err != nil {
		return nil, fmt.Errorf("%w: the manifest's verifier list is not one you approved: %w", ErrUntrusted, err)
	}
	a.Checks = append(a.Checks, "you approved this version's verifier list")
	k.fromList = true
	for _, v := range m.Verifiers {
		set, err := v.PinnedKeys()
		switch {
		case err != nil:
			k.tried = append(k.tried, fmt.Sprintf("%s (pinned key unusable: %v)", v.Name, err))
			continue
		case set == nil && t.FetchJWKS == nil:
			k.tried = append(k.tried, fmt.Sprintf("%s (keys at %s, not fetched)", v.Name, v.JWKSURL))
			continue
		case set == nil:
			if set, err = t.FetchJWKS(ctx, v.JWKSURL); err != nil {
				k.tried = append(k.tried, fmt.Sprintf("%s (keys at %s unavailable: %v)", v.Name, v.JWKSURL, err))
				continue
			}
		}
		if err := k.add(v.Name, set); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUntrusted, err)
		}
	}
	if k.set.Len() == 0 {
		return nil, fmt.Errorf("%w: no keys for any of the manifest's verifiers: %s", ErrUntrusted, strings.Join(k.tried, "; "))
	}
	return k, nil
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
