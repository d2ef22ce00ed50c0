// Package auditlog is kura's append-only transparency log: every approval,
// key release, run, result, deletion receipt and policy change is appended
// as a small canonical JSON entry (hashes, never secrets) to a Merkle tree
// log kept by Tessera's POSIX driver, whose state is published as C2SP
// signed-note checkpoints and tlog-tiles.
//
// Security model: the log operator is not trusted. Anyone holding the log's
// verifier key checks, from the served tiles alone, that a checkpoint is
// signed by the log, that it extends every checkpoint seen before
// (consistency; the first one is trusted on first use), that a given entry
// is included (inclusion), and, in a full audit, that every entry re-hashes
// to the signed root, so an entry modified or removed after the fact is
// detected. A log that shows different histories to different people is
// caught by a client that remembers its last checkpoint, or by witnesses:
// independent parties that cosign a checkpoint only after checking it is
// consistent with the last one they cosigned (C2SP tlog-witness protocol,
// tlog-cosignature Ed25519 cosignature/v1). Verification can require N of M
// witness cosignatures. What the log cannot prove is that an event which
// was never appended happened; the components that append (the key broker
// before it answers, the worker before it releases a result) make the entry
// a precondition of the action.
//
// The entry format, the proof format and the verification procedure are
// specified in docs/spec/auditlog.md.
//
// The log itself (Log, Open, its HTTP handler) keeps its tiles in files
// with POSIX locking and is not built for js/wasm; entries, proofs and
// their verification are, so that a browser can check proofs with this
// code (package result's verification builds there too).
package auditlog
