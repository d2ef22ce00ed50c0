// Package blob is kura's storage for sealed datasets and result bundles: a
// small Store interface (Put, Get, Stat, Delete, List) over flat,
// slash-separated keys, with two backends: blob/local, a directory on the
// local filesystem (the default), and blob/s3, any S3-compatible object
// store (the scale-out option).
//
// Keys are relative names such as "datasets/7f3c/data.kura". CheckKey
// defines which keys are valid; every backend refuses any other key with an
// error wrapping ErrInvalidKey before it touches storage, so a key can never
// name a path outside the store's directory or bucket prefix.
//
// Objects stream in both directions: Put reads its io.Reader once, Get
// returns an io.ReadCloser, and no backend holds a whole object in memory.
// A Put replaces the object atomically: readers see the old object or the
// new one, never a prefix of either, and a Put that fails (reader error,
// size mismatch, cancelled context) leaves the previous object, or no
// object, under the key.
//
// # Security model
//
// The store is untrusted. It only ever holds ciphertext: datasets are sealed
// on the owner's machine (docs/spec/dataset.md) and results are sealed
// inside the TEE before they are stored. Whoever runs the store, the disk or
// the bucket can read, delete, replace, reorder or roll back objects, and
// nothing in this package detects that. Confidentiality and integrity come
// from the layers above: the dataset envelope's AEAD authenticates every
// chunk and its header, and the manifest records the SHA-256 of every sealed
// file, so a consumer that verifies the digest and opens the envelope
// detects any change the store made. For the same reason Info carries no
// digest: a digest reported by an untrusted store proves nothing, so callers
// hash what they read and compare it with the manifest.
//
// Availability is the store's to lose: a deleted or corrupted object cannot
// be recovered from here. Keys and sizes are visible to the store, so keys
// should not contain anything confidential (use opaque identifiers).
package blob
