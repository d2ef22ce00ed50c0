package result

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/party"
)

// VerifiedBundle is a bundle whose every check passed.
type VerifiedBundle struct {
	*Attested
	Bundle *Bundle
	// Digest is the hex SHA-256 of the signed payload: what receipts and
	// the transparency log refer to.
	Digest string
}

// VerifyBundle checks a result bundle offline before anything is decrypted:
// the envelope signature with the run's signing key, the attestation token
// and its binding to the run and the evidence, the worker measurement
// against the manifest, the collaboration's history and the approval of
// every owner whose data the analysis read, and that the inputs are the
// manifest's datasets. Any failure is an error naming what failed.
func VerifyBundle(ctx context.Context, f *File, t Trust) (*VerifiedBundle, error) {
	b, rc, err := decodeBundle(f.Envelope.Payload)
	if err != nil {
		return nil, err
	}
	if err := f.Envelope.verify(BundleType, rc.SigningKey); err != nil {
		return nil, err
	}
	a, err := runOf(ctx, b.Run, b.CreatedAt, b.Evidence, b.EAR, b.Agents, b.Collaboration, t)
	if err != nil {
		return nil, err
	}
	a.Checks = append([]string{"bundle signed by the run's ephemeral key"}, a.Checks...)
	if err := checkApprovals(a.collab, a.Manifest, rc.Analysis); err != nil {
		return nil, err
	}
	a.Checks = append(a.Checks, "every owner whose data the analysis reads approved it")
	if err := checkInputs(a.Manifest, rc.Analysis, b.Inputs); err != nil {
		return nil, err
	}
	a.Checks = append(a.Checks, "inputs are the manifest's sealed datasets (SHA-256)")
	if t.Log != nil {
		msg, err := checkLogProof(f, auditlog.KindResult, rc.RunID, t.Log)
		if err != nil {
			return nil, err
		}
		a.Checks = append(a.Checks, msg)
	}
	return &VerifiedBundle{Attested: a, Bundle: b, Digest: DigestHex(f.Envelope.Payload)}, nil
}

// runOf checks who produced a bundle or receipt: an attested worker, or
// the owners' agents on the cryptographic backend.
func runOf(ctx context.Context, run []byte, signedAt time.Time, evidence json.RawMessage, ear string, agents []*Envelope, collabFile json.RawMessage, t Trust) (*Attested, error) {
	if len(agents) > 0 {
		return mpcRun(run, evidence, ear, collabFile, agents, t)
	}
	a, err := attestedRun(ctx, run, signedAt, evidence, ear, collabFile, t)
	if err != nil {
		return nil, err
	}
	if an := a.Manifest.Analysis(a.Run.Analysis); an != nil && an.BackendOf() == collab.BackendMPC {
		return nil, fmt.Errorf("%w: analysis %q is approved for the mpc backend only, and this run was a TEE worker's", ErrUntrusted, a.Run.Analysis)
	}
	return a, nil
}

// checkInputs checks that the inputs are exactly the datasets the analysis
// reads, with the manifest's digests and key resources.
func checkInputs(m *collab.Manifest, analysisID string, in []Input) error {
	reads := collab.ReadsOf(m.Analysis(analysisID))
	if len(in) != len(reads) {
		return fmt.Errorf("%w: the bundle lists %d inputs; analysis %q reads %d datasets", ErrUntrusted, len(in), analysisID, len(reads))
	}
	for i, id := range reads {
		ds := m.Dataset(id)
		if ds == nil || in[i].Dataset != id {
			return fmt.Errorf("%w: input %d is %q, want %q", ErrUntrusted, i, in[i].Dataset, id)
		}
		if in[i].SealedSHA256 != ds.Descriptor.SealedSHA256 || in[i].KeyResource != ds.Descriptor.KeyBroker.Resource {
			return fmt.Errorf("%w: input %q is not the sealed file and key the manifest names", ErrUntrusted, id)
		}
	}
	return nil
}

// Open decrypts the receiver's copy of the output and checks it against the
// signed digest. Call it only on a verified bundle.
func (v *VerifiedBundle) Open(id *party.Identity) ([]byte, error) {
	fp := id.Card().Fingerprint
	for _, s := range v.Bundle.Outputs {
		if s.Fingerprint != fp {
			continue
		}
		out, err := id.Open(s.Ciphertext, sealInfo(v.Run.RunID, fp))
		if err != nil {
			return nil, fmt.Errorf("%w: decrypt %s's copy: %w", ErrTampered, s.Receiver, err)
		}
		if subtle.ConstantTimeCompare([]byte(DigestHex(out)), []byte(v.Bundle.OutputSHA256)) != 1 {
			return nil, ErrTampered
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s (%s) is not among this result's receivers", ErrNotReceiver, id.Name(), fp)
}
