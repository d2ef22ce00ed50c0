package result

import (
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/kura-cc/kura/auditlog"
)

// checkLogProof verifies, offline, that the file's signed payload is in the
// transparency log: the embedded proof's checkpoint is signed by the log,
// its inclusion proof leads to the checkpoint's root, and the logged entry
// is of the right kind, for this run, with this payload's digest.
func checkLogProof(f *File, kind auditlog.Kind, runID string, log note.Verifier) (string, error) {
	if len(f.LogProof) == 0 {
		return "", fmt.Errorf("%w: no transparency-log proof embedded, and the log is required", ErrUntrusted)
	}
	p, err := auditlog.ParseProof(f.LogProof)
	if err != nil {
		return "", fmt.Errorf("%w: log proof: %w", ErrMalformed, err)
	}
	cp, err := auditlog.VerifyProof(p, log)
	if err != nil {
		return "", fmt.Errorf("%w: log proof: %w", ErrUntrusted, err)
	}
	e, err := auditlog.ParseEntry(p.Entry)
	if err != nil {
		return "", fmt.Errorf("%w: logged entry: %w", ErrMalformed, err)
	}
	if want := "sha256:" + DigestHex(f.Envelope.Payload); e.Kind != kind || e.Run != runID || e.Subject != want {
		return "", fmt.Errorf("%w: the log proof is for a %s entry of run %s with subject %s, not this %s", ErrUntrusted, e.Kind, e.Run, e.Subject, kind)
	}
	return fmt.Sprintf("in transparency log %s at index %d (checkpoint of size %d)", cp.Origin, p.Index, cp.Size), nil
}
