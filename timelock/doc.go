// Package timelock seals documents that nobody can open before a set time,
// with drand time-lock encryption (tlock): a file is encrypted to a future
// round of a threshold BLS randomness beacon, and the beacon's signature of
// that round, published only when the round comes, is the decryption key.
// The formats, validation rules and threat model are specified in
// docs/spec/timelock.md.
//
// Seal without recipients writes drand's standard tlock format (an age file
// with one "tlock" stanza), which drand's own tools open. Seal with
// recipients writes the kura time-lock envelope: opening it needs both the
// round's signature and the private key of one of the recipients' party
// cards, and the payload is the chunked AEAD of package dataset.
//
// # Security model
//
// Before the round is published, nobody can open a sealed file unless a
// threshold of the beacon's operators collude (for drand's public quicknet,
// the League of Entropy). After it, anyone can open a file without
// recipients; a file with recipients still needs a recipient's key. The
// beacon's chain is pinned by its hash, which commits to its public key,
// period and genesis; every beacon signature is verified against that key
// before use. Availability depends on the beacon: if it stops, files stay
// sealed. The sealer had the plaintext and may keep it. A dev beacon
// (package timelock/beacon) is refused unless Options allow insecure
// beacons.
package timelock
