package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// Reader reads and verifies a log someone else runs, from its directory or
// its served URL, trusting nothing but the log's verifier key (and,
// optionally, witnesses' keys).
type Reader struct {
	src source
	v   note.Verifier
}

// NewReader returns a Reader for the log at loc: a directory or an http(s)
// URL of the served log (the prefix under which /checkpoint is served).
// hc may be nil (http.DefaultClient).
func NewReader(loc string, logVerifier note.Verifier, hc *http.Client) (*Reader, error) {
	if logVerifier == nil {
		return nil, errors.New("auditlog: a log verifier key is required")
	}
	s, err := openSource(loc, hc)
	if err != nil {
		return nil, err
	}
	return &Reader{src: s, v: logVerifier}, nil
}

// Origin is the log's origin, the verifier key's name.
func (r *Reader) Origin() string { return r.v.Name() }

// Checkpoint fetches the log's latest checkpoint and verifies its signature.
func (r *Reader) Checkpoint(ctx context.Context) ([]byte, *flog.Checkpoint, error) {
	raw, err := readCheckpoint(ctx, r.src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("no checkpoint at %s: is this a kura audit log? %w", r.src, err)
	}
	if err != nil {
		return nil, nil, err
	}
	cp, err := openCheckpoint(raw, r.v)
	if err != nil {
		return nil, nil, err
	}
	return raw, cp, nil
}

// Prove fetches the entry at index and its inclusion proof against the
// given (verified) checkpoint, and verifies it.
func (r *Reader) Prove(ctx context.Context, index uint64, cpRaw []byte, cp *flog.Checkpoint) (*Proof, error) {
	p, err := buildProof(ctx, r.src, index, cpRaw, cp)
	if err != nil {
		return nil, err
	}
	if _, err := VerifyProof(p, r.v); err != nil {
		return nil, err
	}
	return p, nil
}

// CheckConsistency proves that the tree of checkpoint newer extends that of
// older (both verified), with a consistency proof built from the log's
// tiles. A fork, rollback or rewrite fails with ErrInconsistent.
func (r *Reader) CheckConsistency(ctx context.Context, older, newer *flog.Checkpoint) error {
	switch {
	case older.Size > newer.Size:
		return fmt.Errorf("%w: log shrank from %d to %d entries (rollback)", ErrInconsistent, older.Size, newer.Size)
	case older.Size == newer.Size:
		if !bytes.Equal(older.Hash, newer.Hash) {
			return fmt.Errorf("%w: two different roots for size %d (fork)", ErrInconsistent, older.Size)
		}
		return nil
	case older.Size == 0:
		return nil
	}
	pb, err := client.NewProofBuilder(ctx, newer.Size, tiles(r.src))
	if err != nil {
		return err
	}
	p, err := pb.ConsistencyProof(ctx, older.Size, newer.Size)
	if err != nil {
		return fmt.Errorf("%w: no consistency proof from %d to %d: %v", ErrInconsistent, older.Size, newer.Size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Hash, newer.Hash); err != nil {
		return fmt.Errorf("%w: size %d does not extend size %d: %v", ErrInconsistent, newer.Size, older.Size, err)
	}
	return nil
}

// Audit reads every entry of the tree committed to by cp, calls fn (if not
// nil) with each, re-hashes them all and checks that they give the signed
// root: an entry modified, removed, reordered or added after signing fails
// with ErrTampered. Entries are handed to fn before the root is known to
// match; callers that show them should wait for Audit's result.
func (r *Reader) Audit(ctx context.Context, cp *flog.Checkpoint, fn func(index uint64, raw []byte) error) error {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	for bi := uint64(0); bi*layout.EntryBundleWidth < cp.Size; bi++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		first := bi * layout.EntryBundleWidth
		want := min(uint64(layout.EntryBundleWidth), cp.Size-first)
		raw, err := readBundle(ctx, r.src, bi, layout.PartialTileSize(0, bi, cp.Size))
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: entry bundle %d (entries %d-%d) is missing", ErrTampered, bi, first, first+want-1)
		}
		if err != nil {
			return err
		}
		var b api.EntryBundle
		if err := b.UnmarshalText(raw); err != nil {
			return fmt.Errorf("%w: entry bundle %d: %v", ErrTampered, bi, err)
		}
		if uint64(len(b.Entries)) < want {
			return fmt.Errorf("%w: entry bundle %d holds %d entries, the checkpoint commits to %d (entries removed)", ErrTampered, bi, len(b.Entries), want)
		}
		for i, e := range b.Entries[:want] {
			if err := cr.Append(rfc6962.DefaultHasher.HashLeaf(e), nil); err != nil {
				return err
			}
			if fn != nil {
				if err := fn(first+uint64(i), e); err != nil {
					return err
				}
			}
		}
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if cp.Size > 0 {
		var err error
		if root, err = cr.GetRootHash(nil); err != nil {
			return err
		}
	}
	if !bytes.Equal(root, cp.Hash) {
		return fmt.Errorf("%w: the %d entries hash to root %x, the signed checkpoint says %x", ErrTampered, cp.Size, root, cp.Hash)
	}
	return nil
}

// CheckWitnesses counts the distinct witnesses among ws whose cosignature
// on the checkpoint note verifies, and fails with ErrWitness if fewer than
// threshold did. A cosignature that is present but invalid counts as none.
func CheckWitnesses(checkpoint []byte, ws []note.Verifier, threshold int) (int, error) {
	n := 0
	seen := map[string]bool{}
	for _, w := range ws {
		id := fmt.Sprintf("%s+%08x", w.Name(), w.KeyHash())
		if seen[id] {
			continue
		}
		seen[id] = true
		if _, err := note.Open(checkpoint, note.VerifierList(w)); err == nil {
			n++
		}
	}
	if n < threshold {
		return n, fmt.Errorf("%w: %d of the %d configured witnesses cosigned the checkpoint, %d required", ErrWitness, n, len(seen), threshold)
	}
	return n, nil
}

// VerifyOptions says what Verify checks besides the checkpoint signature.
type VerifyOptions struct {
	// StatePath keeps the last verified checkpoint between runs; the new
	// one must extend it. Empty: no memory (nothing to compare with).
	StatePath string
	// Witnesses and WitnessThreshold: at least WitnessThreshold of these
	// witnesses must have cosigned the checkpoint.
	Witnesses        []note.Verifier
	WitnessThreshold int
	// Indexes are entries whose inclusion is checked.
	Indexes []uint64
	// Proofs are proofs (e.g. from result bundles) checked offline, and
	// whose checkpoints must be consistent with the log's.
	Proofs []*Proof
	// Full re-hashes every entry against the signed root.
	Full bool
}

// Report says what Verify checked.
type Report struct {
	Source     string
	Origin     string
	Size       uint64
	Root       []byte
	Checkpoint []byte
	// PreviousSize is the size of the checkpoint remembered from before.
	PreviousSize uint64
	// FirstUse is true when no checkpoint was remembered: this one is
	// trusted on first use and remembered.
	FirstUse bool
	// StateUpdated is true when the remembered checkpoint was advanced.
	StateUpdated bool
	// Witnessed counts valid witness cosignatures.
	Witnessed int
	// Included lists the entries whose inclusion was verified.
	Included []uint64
	// ProofsVerified counts verified proofs.
	ProofsVerified int
	// FullAudit is true when every entry was re-hashed.
	FullAudit bool
}

// Verify fetches and verifies the log's checkpoint, then runs the checks
// opts asks for, in this order: witnesses, consistency with the remembered
// checkpoint, proofs, inclusion of entries, full audit. It updates the
// remembered checkpoint only when everything passed.
func (r *Reader) Verify(ctx context.Context, opts VerifyOptions) (*Report, error) {
	raw, cp, err := r.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Source: r.src.String(), Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Checkpoint: raw}
	if len(opts.Witnesses) > 0 || opts.WitnessThreshold > 0 {
		if rep.Witnessed, err = CheckWitnesses(raw, opts.Witnesses, opts.WitnessThreshold); err != nil {
			return rep, err
		}
	}
	var prev *flog.Checkpoint
	if opts.StatePath != "" {
		old, err := os.ReadFile(opts.StatePath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			rep.FirstUse = true
		case err != nil:
			return rep, fmt.Errorf("state: %w", err)
		default:
			if prev, err = openCheckpoint(old, r.v); err != nil {
				return rep, fmt.Errorf("remembered checkpoint %s: %w", opts.StatePath, err)
			}
			rep.PreviousSize = prev.Size
			if err := r.CheckConsistency(ctx, prev, cp); err != nil {
				return rep, err
			}
		}
	}
	for i, p := range opts.Proofs {
		pcp, err := VerifyProof(p, r.v)
		if err != nil {
			return rep, fmt.Errorf("proof %d (entry %d): %w", i+1, p.Index, err)
		}
		older, newer := pcp, cp
		if pcp.Size > cp.Size {
			older, newer = cp, pcp
		}
		if err := r.CheckConsistency(ctx, older, newer); err != nil {
			return rep, fmt.Errorf("proof %d (entry %d) against the log: %w", i+1, p.Index, err)
		}
		rep.ProofsVerified++
	}
	for _, i := range opts.Indexes {
		if _, err := r.Prove(ctx, i, raw, cp); err != nil {
			return rep, fmt.Errorf("entry %d: %w", i, err)
		}
		rep.Included = append(rep.Included, i)
	}
	if opts.Full {
		// A malformed entry is reported only once the root matches: until
		// then, the likelier explanation is tampering.
		var bad error
		err := r.Audit(ctx, cp, func(i uint64, e []byte) error {
			if _, err := ParseEntry(e); err != nil && bad == nil {
				bad = fmt.Errorf("entry %d: %w", i, err)
			}
			return nil
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return rep, err
		}
		rep.FullAudit = true
	}
	if opts.StatePath != "" && (prev == nil || cp.Size > prev.Size) {
		if err := writeState(opts.StatePath, raw); err != nil {
			return rep, fmt.Errorf("remember checkpoint: %w", err)
		}
		rep.StateUpdated = true
	}
	return rep, nil
}

// writeState replaces the remembered checkpoint atomically and durably.
func writeState(path string, raw []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
