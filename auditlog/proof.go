package auditlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"

	flog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

// ProofVersion is the version of the proof JSON format.
const ProofVersion = 1

// MaxProofSize bounds an encoded proof.
const MaxProofSize = 256 << 10

// maxProofHashes bounds an inclusion proof: a tree of 2^64 leaves needs 64.
const maxProofHashes = 64

// Proof shows, offline, that an entry is in the log: the entry, its index,
// a signed checkpoint and the Merkle inclusion proof from the entry's leaf
// hash to the checkpoint's root (docs/spec/auditlog.md §5). Result bundles
// and deletion receipts embed one.
type Proof struct {
	// Index is the entry's position in the log, from 0.
	Index uint64
	// Entry is the entry's canonical encoding, as logged.
	Entry []byte
	// Checkpoint is the signed checkpoint note (C2SP tlog-checkpoint),
	// possibly with witness cosignatures.
	Checkpoint []byte
	// Inclusion is the RFC 6962 inclusion proof, leaf to root.
	Inclusion [][]byte
}

type wireProof struct {
	V          int      `json:"v"`
	Index      uint64   `json:"index"`
	Entry      []byte   `json:"entry"`
	Checkpoint string   `json:"checkpoint"`
	Inclusion  [][]byte `json:"inclusion"`
}

// MarshalJSON encodes the proof (docs/spec/auditlog.md §5).
func (p *Proof) MarshalJSON() ([]byte, error) {
	inc := p.Inclusion
	if inc == nil {
		inc = [][]byte{}
	}
	return json.Marshal(wireProof{V: ProofVersion, Index: p.Index, Entry: p.Entry, Checkpoint: string(p.Checkpoint), Inclusion: inc})
}

// ParseProof decodes a proof strictly (unknown fields, wrong sizes and
// trailing data refused). It does not verify it: see VerifyProof.
func ParseProof(b []byte) (*Proof, error) {
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("%w: proof is %d bytes, more than %d", ErrMalformed, len(b), MaxProofSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireProof
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: proof: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: proof: data after the JSON object", ErrMalformed)
	}
	switch {
	case w.V != ProofVersion:
		return nil, fmt.Errorf("%w: proof version %d, want %d", ErrMalformed, w.V, ProofVersion)
	case len(w.Entry) == 0 || len(w.Entry) > MaxEntrySize:
		return nil, fmt.Errorf("%w: proof entry is %d bytes (want 1 to %d)", ErrMalformed, len(w.Entry), MaxEntrySize)
	case w.Checkpoint == "" || len(w.Checkpoint) > maxCheckpointSize:
		return nil, fmt.Errorf("%w: proof checkpoint is %d bytes (want 1 to %d)", ErrMalformed, len(w.Checkpoint), maxCheckpointSize)
	case len(w.Inclusion) > maxProofHashes:
		return nil, fmt.Errorf("%w: inclusion proof has %d hashes, more than %d", ErrMalformed, len(w.Inclusion), maxProofHashes)
	}
	for i, h := range w.Inclusion {
		if len(h) != rfc6962.DefaultHasher.Size() {
			return nil, fmt.Errorf("%w: inclusion proof hash %d is %d bytes, want 32", ErrMalformed, i, len(h))
		}
	}
	return &Proof{Index: w.Index, Entry: w.Entry, Checkpoint: []byte(w.Checkpoint), Inclusion: w.Inclusion}, nil
}

// VerifyProof checks a proof offline against the log's verifier key: the
// checkpoint is signed by the log, the index is inside the checkpoint's
// tree, the entry is canonical, and the inclusion proof leads from the
// entry's leaf hash to the signed root. It returns the verified checkpoint.
func VerifyProof(p *Proof, logVerifier note.Verifier) (*flog.Checkpoint, error) {
	cp, err := openCheckpoint(p.Checkpoint, logVerifier)
	if err != nil {
		return nil, err
	}
	if p.Index >= cp.Size {
		return nil, fmt.Errorf("%w: index %d is outside the checkpoint's tree of size %d", ErrNotIncluded, p.Index, cp.Size)
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(p.Entry)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.Index, cp.Size, leaf, p.Inclusion, cp.Hash); err != nil {
		return nil, fmt.Errorf("%w: entry %d: %v", ErrNotIncluded, p.Index, err)
	}
	if _, err := ParseEntry(p.Entry); err != nil {
		return nil, fmt.Errorf("proof entry: %w", err)
	}
	return cp, nil
}

// openCheckpoint verifies a checkpoint note's log signature and parses it.
// The origin is the verifier's name.
func openCheckpoint(raw []byte, v note.Verifier) (*flog.Checkpoint, error) {
	if len(raw) > maxCheckpointSize {
		return nil, fmt.Errorf("%w: checkpoint larger than %d bytes", ErrMalformed, maxCheckpointSize)
	}
	n, err := note.Open(raw, note.VerifierList(v))
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return nil, fmt.Errorf("%w: checkpoint is not signed by %s", ErrBadSignature, v.Name())
		}
		// A corrupted signature line makes the note malformed: to the
		// reader, the signature does not verify either way.
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrBadSignature, err)
	}
	cp := &flog.Checkpoint{}
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("%w: checkpoint: %v", ErrMalformed, err)
	}
	if cp.Origin != v.Name() {
		return nil, fmt.Errorf("%w: checkpoint origin %q, want %q", ErrBadSignature, cp.Origin, v.Name())
	}
	if len(cp.Hash) != rfc6962.DefaultHasher.Size() {
		return nil, fmt.Errorf("%w: checkpoint root hash is %d bytes", ErrMalformed, len(cp.Hash))
	}
	return cp, nil
}

// tiles adapts a source to tessera's tile fetcher, so its proof builder
// can assemble inclusion and consistency proofs.
func tiles(s source) client.TileFetcherFunc {
	return func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		return readTile(ctx, s, level, index, p)
	}
}

// entryAt fetches the raw entry at index from a tree of the given size.
func entryAt(ctx context.Context, s source, index, size uint64) ([]byte, error) {
	bi := index / layout.EntryBundleWidth
	raw, err := readBundle(ctx, s, bi, layout.PartialTileSize(0, bi, size))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: entry bundle %d holding entry %d is missing", ErrTampered, bi, index)
	}
	if err != nil {
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("%w: entry bundle %d: %v", ErrTampered, bi, err)
	}
	i := index % layout.EntryBundleWidth
	if i >= uint64(len(b.Entries)) {
		return nil, fmt.Errorf("%w: entry bundle %d holds %d entries, entry %d is missing", ErrTampered, bi, len(b.Entries), index)
	}
	return b.Entries[i], nil
}

// buildProof assembles a proof for index against a verified checkpoint.
func buildProof(ctx context.Context, s source, index uint64, cpRaw []byte, cp *flog.Checkpoint) (*Proof, error) {
	if index >= cp.Size {
		return nil, fmt.Errorf("%w: index %d is outside the log of size %d", ErrNotIncluded, index, cp.Size)
	}
	e, err := entryAt(ctx, s, index, cp.Size)
	if err != nil {
		return nil, err
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, tiles(s))
	if err != nil {
		return nil, err
	}
	inc, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return nil, fmt.Errorf("%w: inclusion proof for %d: %v", ErrTampered, index, err)
	}
	return &Proof{Index: index, Entry: e, Checkpoint: cpRaw, Inclusion: inc}, nil
}
