// Package worker is the clean-room worker, the only kura code that sees
// plaintext. It runs inside a TEE (or the INSECURE simulated one in dev
// mode), one run per process call, and keeps nothing afterwards
// (docs/spec/cleanroom.md).
//
// Security model: the data owners approve the worker by its measurement in
// the collaboration manifest; their key brokers release dataset keys only to
// evidence carrying that measurement and binding this run's context. The
// worker trusts nothing it fetches: sealed files are checked against the
// manifest's digests and authenticated chunk by chunk as they are
// decrypted, into memory only.
package worker
