// Package sim is the simulated TEE: an attester and verifier for machines
// without TEE hardware, for development and tests only.
//
// Security model: there is none. Sim evidence is signed by an ordinary
// software key that anyone on the machine can read, and its measurement is
// the hash of a file anyone can copy. It proves nothing about where code
// runs. Every claim set it produces carries "insecure": true, every message
// about it says INSECURE, and kura's default policies refuse it unless dev
// mode is on. The evidence format is in docs/spec/attestation.md §4.3.
package sim
