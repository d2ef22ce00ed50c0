// Package psi is the cryptographic core of kura's two-party private set
// intersection (PSI) for the software backend: a Diffie-Hellman style
// ("ECDH-PSI") protocol over ristretto255 in the semi-honest model, after
// Ion et al., "On Deploying Secure Computing: Private
// Intersection-Sum-with-Cardinality" (EuroS&P 2020), without its
// homomorphically encrypted sums.
//
// Party A (the [Sender]) holds identifiers, each with optional A-side
// attributes kept locally. Party B (the [Receiver]) holds identifiers only.
// Identifiers are byte strings the parties have normalised the same way
// (E.164 phone numbers, hashed e-mail addresses, …).
//
// A session is three messages:
//
//	A: req  := NewSender(cfg, idsA).Request()      // round 1, A → B
//	B: resp := NewReceiver(cfg, idsB).Respond(req) // round 2, B → A
//	A: res  := sender.Finish(resp)                 // round 3, local to A
//
// after which A calls [Result.Size], or in [ModeRows] [Result.Rows] and
// [Result.Aggregate] (counts and integer sums of A-side values grouped by an
// A-side dimension, with the output threshold applied inside).
//
// # Protocol
//
// Let G be ristretto255 and H the hash-to-group function
// ristretto255_XMD:SHA-512_R255MAP_RO_ (RFC 9380 Appendix B; circl's
// group.Ristretto255.HashToElement is the reference, and this package's
// own implementation on curve25519-voi, which does the bulk arithmetic, is
// tested byte for byte against it) with domain separation tag
//
//	DST = "kura-psi-v1 ristretto255_XMD:SHA-512_R255MAP_RO_" || sid
//
// where sid is the 32-byte session id, fresh and uniformly random for every
// session ([NewSessionID]) and agreed on out of band (in kura, the
// initiating agent draws it and signs it in its statement,
// docs/spec/mpc.md §3). Both parties draw a fresh secret scalar
// (α for A, β for B) from crypto/rand for the session and zeroise it, best
// effort, once it is used or on Close.
//
//  1. A deduplicates its identifiers, shuffles the distinct ones and sends
//     Request{ H(a)^α for each distinct a, in that order }.
//  2. B checks the request, deduplicates its own identifiers and sends
//     Response{ Reblinded: (H(a)^α)^β for each request element,
//     Elements: H(b)^β for each distinct b, shuffled }. In [ModeRows]
//     Reblinded keeps the request's order, so A can map each entry back to
//     its own rows; in [ModeCardinality] B shuffles Reblinded too.
//  3. A computes (H(b)^β)^α for every Elements entry and looks up each
//     Reblinded entry among them. Because exponentiation commutes, an
//     entry matches exactly when the identifiers are equal (except with
//     negligible probability). In [ModeRows] A learns which of its rows are
//     in the intersection; in [ModeCardinality] A learns only the number of
//     matches.
//
// [ModeGroups] is [ModeCardinality] once per group of A's identifiers
// ([NewGroupSender]): A sends its groups one after the other with their
// sizes, B shuffles its answer within each group, and A learns the number
// of matches in each group ([Result.Groups]). Each identifier belongs to
// one group, so no element is sent twice. This is how kura's cryptographic
// backend counts the intersection grouped by A's dimension without A
// learning which of its rows matched. In this mode B may attach a payload
// to each of its elements ([NewPayloadReceiver]), and A learns which of
// B's elements matched each group ([Result.Matches]): kura's agents send
// B's values encrypted under a key neither holds alone there, and A adds
// up each group's ciphertexts without learning any value.
//
// All elements are compared by their canonical 32-byte encoding.
//
// # Three or more parties
//
// [Blinder] and [Chain] are the building blocks of a chain of blindings
// among one initiator and two or more responders (docs/spec/mpc.md §3.2):
// each party raises lists by its own secret exponent ([Blinder.Hash],
// [Blinder.HashGroups], [Blinder.Reblind], [Blinder.Unblind]), the last
// responder intersects the responders' fully blinded lists ([Intersect])
// and the initiator counts its groups' identifiers in the result
// ([CountIn]). Every party learns the sizes of the lists it handles; the
// last responder learns the sizes of the responders' intersections; the
// initiator learns the intersection's size and each group's count.
//
// # Message formats
//
// All integers are unsigned big-endian. An element is the 32-byte canonical
// ristretto255 encoding (RFC 9496 §4.3.2) of a group element other than the
// identity. Decoders refuse a repeated element within one list, and a
// message is exactly as long as its header says (anything shorter or longer
// is refused); [Receiver.Respond] and [Sender.Finish] refuse non-canonical
// encodings and the identity as they decode each element to use it, so
// that each element is decoded once.
//
//	Request (round 1, A → B):
//	  u8        version = 1
//	  u8        type    = 1
//	  u8        mode      (1 = rows, 2 = cardinality, 3 = groups)
//	  [32]byte  session id
//	  u32       n         (1 ≤ n ≤ MaxElements)
//	  n × [32]byte  H(a)^α
//	  in mode 3 (groups) only:
//	  u32       k         (1 ≤ k ≤ MaxGroups)
//	  k × u32   group sizes (each ≥ 1, summing to n)
//
//	Response (round 2, B → A):
//	  u8        version = 1
//	  u8        type    = 2
//	  u8        mode
//	  [32]byte  session id
//	  u32       n         (must equal the request's n)
//	  n × [32]byte  (H(a)^α)^β
//	  u32       m         (0 ≤ m ≤ MaxElements)
//	  m × [32]byte  H(b)^β
//	  in mode 3 (groups) only:
//	  u16       p         (payload size, 0 ≤ p ≤ MaxPayloadSize)
//	  m × [p]byte   a payload per H(b)^β, in the same order
//
// [Request.UnmarshalBinary] and [Response.UnmarshalBinary] enforce the
// package-wide cap [MaxElements]; [Receiver.Respond]
// and [Sender.Finish] then enforce the session's [Config] (its own, smaller
// MaxElements, the session id and the mode). Transports should cap the
// bytes they read at [Config.MaxMessageSize].
//
// # Security model
//
// Semi-honest parties; security rests on the decisional Diffie-Hellman
// assumption in ristretto255 with H modelled as a random oracle.
//
// B learns the number of distinct identifiers A holds, and nothing else:
// the request is a shuffled list of pseudorandom group elements. A never
// sends more than one message, so B learns nothing of the result.
//
// A learns, in [ModeCardinality], the number of distinct identifiers B
// holds and the size of the intersection. In [ModeRows] A also learns which
// of its rows are in the intersection. In [ModeGroups] A learns the size of
// each group's intersection, and B learns the number and sizes of A's
// groups.
//
// Per-row attributes of B (the values an intersection-sum adds up) are not
// supported yet. B sends H(b)^β and nothing else, so nothing of B's rows
// beyond membership is revealed. Sent in the clear next to H(b)^β,
// attributes would show A those of every B row, matched or not; supporting
// them needs homomorphic encryption (Paillier ciphertexts that A can only
// sum, as in Ion et al. 2020) or an OPRF-based design.
//
// Duplicate identifiers within one party's input are sent once, so no
// multiplicity is revealed. A [Sender] keeps its row multiplicities
// locally.
//
// Output thresholding happens in [Result.Aggregate]: a group with fewer
// than threshold distinct matched identifiers is left out of the result
// altogether. A's own [Result.Rows] are A's to see; the threshold protects
// what leaves the clean room.
//
// What is detected: a message from another session ([ErrSession]) or for
// another mode ([ErrMode]); a second message for a session already used
// ([ErrReplay]); truncation, trailing bytes, bad counts
// ([ErrMalformed], [ErrTooLarge], [ErrMismatch]); non-canonical encodings or
// the identity ([ErrElement]); repeated elements ([ErrDuplicate]). A flipped
// bit in an element either makes it non-canonical (refused) or turns it
// into another valid element, which simply fails to match: a semi-honest
// protocol cannot tell that from a genuinely absent identifier. Malicious
// parties are out of scope: B, for example, can answer with arbitrary
// elements and so make A's result wrong without A noticing.
package psi
