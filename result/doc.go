// Package result holds what a clean-room run leaves behind and how anyone
// checks it offline: the result bundle (which approved analysis ran on which
// sealed inputs in which attested worker, with the output encrypted to each
// receiver) and the deletion receipt, both DSSE envelopes signed with the
// ephemeral key the worker bound into its attestation
// (docs/spec/cleanroom.md).
//
// Security model: a verified bundle proves that a worker whose measurement
// the collaboration lists, attested by one of the verifiers the manifest
// lists, ran the named analysis of the named manifest version, and that
// every owner of the data read had approved that version. The verifier list
// counts only for a party whose own approval covers it (it signed the
// list); anyone else names the verifiers it trusts (Trust.Verifiers). It
// does not prove the worker's code is correct; that is what approving a
// measurement means.
package result
