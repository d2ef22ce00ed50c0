package keybroker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/store"
)

// Resource metadata that marks and describes a clean-room dataset key
// (docs/spec/keybroker.md §6, written by `kura data register`).
const (
	MetaKind            = "kind"
	KindDatasetKey      = "dataset-key"
	MetaSealedSHA256    = "sealed_sha256"
	MetaOwnerSigningKey = "owner_signing_key" // standard base64 Ed25519 public key
)

// DatasetKeyMetadata is the metadata an owner stores with a clean-room
// dataset key (docs/spec/cleanroom.md §3): the dataset, the SHA-256 of its
// sealed file, the data key's id (hex) and the owner's signing key, which
// the broker pins and checks every approval against.
func DatasetKeyMetadata(datasetID, sealedSHA256, keyID string, owner *party.Card) map[string]string {
	return map[string]string{
		MetaKind:            KindDatasetKey,
		"dataset_id":        datasetID,
		MetaSealedSHA256:    sealedSHA256,
		"key_id":            keyID,
		MetaOwnerSigningKey: base64.StdEncoding.EncodeToString(owner.SigningKey),
		"owner_fingerprint": owner.Fingerprint,
	}
}

// AuditSeqHeader names, on every resource answer, the decision's sequence
// number in the broker's audit trail: its broker_seq in the transparency
// log, where anyone can find and prove it.
const AuditSeqHeader = "Kura-Audit-Seq"

// AuditProofHeader, sent as "wait" on a resource request, asks the broker
// to answer only once the decision is in the transparency log, with its
// inclusion proof (standard base64 of the proof's JSON) in the answer's
// header of the same name. Waiting costs up to about two checkpoint
// intervals, so it is opt-in; without it answers carry AuditSeqHeader only.
const AuditProofHeader = "Kura-Audit-Proof"

// proofWait bounds how long an answer waits for its decision's proof.
const proofWait = 10 * time.Second

// RunResourcePrefix is where a clean-room run asks for dataset keys
// (POST, the collaboration file as body).
const RunResourcePrefix = "/kbs/v0/kura/resource/"

// MaxCollaborationSize bounds the collaboration file a worker presents.
const MaxCollaborationSize = 4 << 20

// RunView is what a release policy learns about the clean-room run asking
// for a dataset key, after the broker checked it (input.run).
type RunView struct {
	Collaboration string `json:"collaboration"`
	ManifestHash  string `json:"manifest_hash"`
	Analysis      string `json:"analysis"`
	RunID         string `json:"run_id"`
	Dataset       string `json:"dataset"`
	Owner         string `json:"owner"`
	// MaxRuns is the analysis's run limit (0: none) and Expires the
	// manifest's approval expiry ("": none); the broker enforces both.
	MaxRuns int    `json:"max_runs,omitempty"`
	Expires string `json:"expires,omitempty"`
	// Epsilon is the ε the analysis spends per run, and PrivacyBudget the
	// dataset's total, both exact decimals as the manifest writes them
	// (docs/spec/analysis.md §7), when set; the broker enforces the budget.
	Epsilon       string `json:"epsilon,omitempty"`
	PrivacyBudget string `json:"privacy_budget,omitempty"`
}

// checkRun decides whether a dataset key may go to the attested run. Every
// broker checks independently, trusting only the owner's signing key pinned
// in the resource's metadata, never the coordinator:
//   - the token binds a run context naming the collaboration's current
//     manifest and an analysis in it;
//   - the owner approved that analysis of that manifest (or an earlier
//     version whose changes do not touch the owner's data), and did not
//     revoke that approval: no revocation this broker keeps, or the file
//     holds, signed by the owner key at or after it (ErrApprovalRevoked);
//   - the analysis reads the dataset this key opens, with the sealed
//     file's digest the key was registered for;
//   - the attested worker meets the manifest's worker reference values
//     (measurement, and minimum TCB where set).
func (b *Broker) checkRun(ctx context.Context, a *Attested, r *store.Resource, path string, collabFile []byte) (*RunView, error) {
	if len(collabFile) == 0 {
		return nil, fmt.Errorf("%w: %s is a dataset key, released only to a clean-room run: present the collaboration (POST the collaboration file to the resource URL)", ErrDenied, path)
	}
	if len(a.Context) == 0 {
		return nil, fmt.Errorf("%w: the attestation binds no run context", ErrDenied)
	}
	rc, err := collab.ParseRunContext(a.Context)
	if err != nil {
		return nil, fmt.Errorf("%w: attested run context: %w", ErrDenied, err)
	}
	ownerKey, err := base64.StdEncoding.DecodeString(r.Metadata[MetaOwnerSigningKey])
	if err != nil || len(ownerKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: %s has no valid %s metadata: register it with the owner's party identity", ErrDenied, path, MetaOwnerSigningKey)
	}
	c, err := collab.ParseCollaboration(collabFile)
	if err != nil {
		return nil, fmt.Errorf("%w: collaboration: %w", ErrBadRequest, err)
	}
	if err := c.Verify(); err != nil {
		return nil, fmt.Errorf("%w: collaboration does not verify: %w", ErrDenied, err)
	}
	m := c.Current()
	if m.ID != rc.Collaboration || m.Hash() != rc.ManifestHash {
		return nil, fmt.Errorf("%w: the attested run is for %s manifest %.16s…, the collaboration presented is %s at %.16s…", ErrDenied, rc.Collaboration, rc.ManifestHash, m.ID, m.Hash())
	}
	an := m.Analysis(rc.Analysis)
	if an == nil {
		return nil, fmt.Errorf("%w: analysis %q is not in the manifest", ErrDenied, rc.Analysis)
	}
	if an.BackendOf() == collab.BackendMPC {
		return nil, fmt.Errorf("%w: analysis %q is approved for the mpc backend: its datasets' keys are never released", ErrDenied, an.ID)
	}
	var ds *collab.Dataset
	for _, id := range collab.ReadsOf(an) {
		if d := m.Dataset(id); d != nil && d.Descriptor.KeyBroker.Resource == path {
			ds = d
		}
	}
	if ds == nil {
		return nil, fmt.Errorf("%w: analysis %q does not read the dataset whose key is %s", ErrDenied, an.ID, path)
	}
	if ds.Descriptor.SealedSHA256 != r.Metadata[MetaSealedSHA256] {
		return nil, fmt.Errorf("%w: the manifest's dataset %q has sealed SHA-256 %.16s…, this key was registered for %.16s…", ErrDenied, ds.ID, ds.Descriptor.SealedSHA256, r.Metadata[MetaSealedSHA256])
	}
	if p := m.Party(ds.Owner); p == nil || p.Card == nil || !bytes.Equal(p.Card.SigningKey, ownerKey) {
		return nil, fmt.Errorf("%w: the manifest says dataset %q belongs to %s, whose card does not carry the owner key pinned on %s", ErrDenied, ds.ID, ds.Owner, path)
	}
	revoked, err := b.revocations(ctx, m.ID, ownerKey)
	if err != nil {
		return nil, err
	}
	if err := c.CheckApproved(ed25519.PublicKey(ownerKey), an.ID, revoked...); err != nil {
		if errors.Is(err, collab.ErrRevoked) {
			return nil, fmt.Errorf("%w: %w", ErrApprovalRevoked, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrDenied, err)
	}
	if err := m.CheckWorker(a.View.TEE, a.View.Claims); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDenied, err)
	}
	v := &RunView{Collaboration: m.ID, ManifestHash: rc.ManifestHash, Analysis: an.ID, RunID: rc.RunID, Dataset: ds.ID, Owner: ds.Owner,
		MaxRuns: an.MaxRuns, Expires: m.Expires, PrivacyBudget: ds.OutputPolicy.PrivacyBudget}
	if an.Privacy != nil {
		v.Epsilon = an.Privacy.Epsilon
	}
	return v, nil
}
