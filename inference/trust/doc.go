// Package trust decides whether a confidential-inference gateway may be
// sent anything (docs/spec/inference.md §6–§8), and keeps a gateway's proof
// of itself fresh.
//
// A gateway publishes a Document: the EAR a verifier issued for its
// evidence, whose runtime data binds the gateway's HPKE key configurations
// (as the public key) and a Context naming its purpose and TLS key; the
// evidence itself, a composite bundle with its GPU as device gpu0; and the
// signed Build approval of its build with that approval's inclusion proof
// in kura's transparency log. Publisher attests and refreshes it; Checker,
// under a client's Policy, verifies it against the key configurations the
// gateway serves before a single request is encrypted to them.
//
// # Security model
//
// Everything a gateway sends is untrusted until checked. The trust anchors
// are the client's policy: the verifiers whose tokens it accepts, the
// gateway measurements it allows, the transparency log's key and the
// parties whose build approvals count. A passing check establishes that a
// trusted verifier appraised, within the token's lifetime, hardware evidence
// of an allowed (or logged-and-approved) gateway build that holds the
// private keys of exactly these key configurations, and, when the policy
// requires it, a verified NVIDIA GPU attested with it. It does not
// establish that the build is free of bugs, that the model server behind
// the gateway is honest about what it computes, or anything about the GPU's
// confidential-computing mode beyond its measurements (its signed report has
// no such field); and the simulated TEE, accepted only under
// gateway.allow_insecure, proves nothing.
package trust
