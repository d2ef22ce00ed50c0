// Package agent is kura's cryptographic backend for clean-room analyses:
// the agent each data owner runs next to its own sealed dataset and key,
// which computes an analysis approved for `backend: mpc` with the other
// owner's agent by private set intersection (package mpc/psi, ModeGroups),
// so that no TEE, no key broker and no coordinator ever holds either
// owner's data (docs/spec/mpc.md).
//
// A run has two agents. The initiator is the owner of the dataset that
// holds the analysis's group-by columns (or its from dataset): it starts
// the run (Agent.Run) and computes the result. The responder serves
// Handler and answers one request per run. Each agent, for its own owner,
//
//   - verifies the collaboration file and that its current version is the
//     run's; that the analysis is approved for the mpc backend; that its
//     owner holds the dataset the run asks of it in that role; that every
//     owner whose dataset the analysis reads approved the version (and did
//     not revoke in the file); that the version has not expired;
//   - records the run in its Ledger before it reads a row: a run or
//     session seen before is a replay, max_runs counts its runs, and a run
//     of an analysis with privacy charges its ε to the owner's dataset's
//     privacy_budget, refusing with the numbers when it would overspend;
//   - decrypts its dataset into memory, checks it is the sealed file the
//     manifest names, applies the analysis's filters on its own columns,
//     and sends only blinded identifiers.
//
// The initiator signs, with its owner's party key, a statement binding the
// run context (and so the run's fresh signing key), the session and the
// SHA-256 of its PSI request, and signs every request after that
// (internal/httpsig), which the responder checks before it takes the run; the responder checks the request against it
// and signs its own statement binding the request and its response. Either
// side aborts on a message that does not match what the other signed
// (ErrTampered), on a replay (ErrReplay) and on a run it has not approved
// (ErrRefused). Sums and averages travel encrypted under a two-party key
// (package mpc/elgamal): the responder's values as payloads of its blinded
// identifiers, the initiator's own with its request, returned shuffled and
// rerandomised; the initiator adds up each group's ciphertexts and both
// agents' partial decryptions open the totals only. The initiator applies the output policy (and, with privacy,
// the noise) to the per-group counts, encrypts the result to the
// analysis's receivers and signs the result bundle and deletion receipt
// with the run key; both statements go in them (result.AgentStatement), so
// a receiver checks that both owners' agents took part, with the keys on
// their cards.
//
// # Security model
//
// Semi-honest owners: each agent follows the protocol, and each owner can
// read what its own agent sees. What crosses the wire is the collaboration
// file, the two signed statements, the initiator's blinded identifiers in
// groups and the responder's reblinded answer and blinded identifiers:
// never a raw identifier, attribute or key. The responder learns how many
// distinct identifiers each of the initiator's groups holds (the groups'
// sizes, not their values) and nothing of the result. The initiator learns
// each group's intersection count before suppression — what a TEE worker
// would compute — but not which of its rows matched, and the number of the
// responder's distinct identifiers. An identifier in several of the
// initiator's groups is counted in one of them, chosen with a key drawn for
// the run.
//
// What is not protected: a malicious responder can answer with arbitrary
// elements and change the counts, undetected; a malicious initiator can
// probe membership with groups of one identifier (the responder cannot see
// what a group holds) and read the counts before suppression, or skip the
// output policy — the receivers trust the initiator's agent to apply it.
// The protection against such an owner is the approvals and the audit
// trail: every run is in both owners' ledgers and signed statements, and a
// privacy budget bounds what differencing across runs can learn.
package agent
