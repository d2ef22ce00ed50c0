// Package elgamal is additively homomorphic ("exponential") ElGamal over
// ristretto255 with a two-party key: the encryption kura's cryptographic
// backend uses to add up one party's values over a private set
// intersection, grouped by the other party's groups, without either party
// seeing the other's rows (the intersection-sum of Ion et al., "On
// Deploying Secure Computing: Private Intersection-Sum-with-Cardinality",
// EuroS&P 2020, with ElGamal and a shared key in place of Paillier).
//
// # Scheme
//
// G is the ristretto255 generator (RFC 9496). Each party draws a secret
// share sk_i uniformly from crypto/rand (64 bytes reduced modulo the group
// order, [NewKeyShare]) and publishes P_i = sk_i·G ([KeyShare.Public]).
// The joint key is P = P_A + P_B ([JointKey]); decrypting needs both
// shares.
//
//	Encrypt(m), 0 ≤ m ≤ MaxPlaintext:  r uniform; (C1, C2) = (r·G, m·G + r·P)
//	Add:                               (C1 + C1', C2 + C2'), an encryption of m + m'
//	Rerandomize(c):                    c + Encrypt(0)
//	PartialDecrypt_i(c):               D_i = sk_i·C1
//	Decrypt(c, D_A, D_B):              m with m·G = C2 − D_A − D_B, 0 ≤ m ≤ bound
//
// The last step is a discrete logarithm, solved by baby-step giant-step
// with a table built once per bound ([NewDLog], at most [MaxBound]); the
// caller derives the bound from what it knows (n values clipped to
// [0, max] sum to at most n·max). At bound 2^40 the table takes about
// 24 MiB and 0.15 s to build and a solve at most about 0.08 s on one core
// of the machine the benchmarks ran on; at 2^32, 1.5 MiB, 9 ms and 4 ms.
//
// The encryptor uses precomputed tables of multiples of G and of P
// ([JointKey] builds P's), so an encryption is three constant-time
// fixed-base multiplications, about 0.8 of one variable-base
// multiplication; [PublicKey.EncryptMany] spreads a list over cores.
//
// # Use in kura
//
// B (the responder) receives P_A in A's request, draws its share, encrypts
// each of its values under P = P_A + P_B and sends the ciphertexts next to
// its blinded identifiers, with P_B. A (the initiator) adds up, per group,
// the ciphertexts of B's entries that matched, rerandomises each sum and
// sends the k sums to B. B answers each with its partial decryption; A adds
// its own and decrypts. The protocol itself lives in mpc/agent.
//
// # Encodings
//
// Integers are unsigned big-endian. A point is the 32-byte canonical
// ristretto255 encoding (RFC 9496 §4.3.2) of an element other than the
// identity; decoders refuse non-canonical encodings and the identity
// ([ErrElement]) and inputs of the wrong length ([ErrMalformed]).
//
//	PublicShare, Partial:  [32]byte point
//	Ciphertext:            [32]byte C1 || [32]byte C2
//	Ciphertext list:       u32 n (n ≤ caller's cap ≤ MaxCiphertexts) || n × Ciphertext
//
// A list is exactly as long as its count says. Encoders refuse what the
// decoders would: a ciphertext with an identity component, such as the
// zero [Ciphertext] (the unrandomised sum of nothing).
//
// # Security model
//
// Semi-honest parties. Ciphertexts under the joint key are IND-CPA secure
// under the decisional Diffie-Hellman assumption in ristretto255 as long as
// one of the two shares stays secret: a party that holds one share sees
// ElGamal ciphertexts under a key whose other half it does not know. A
// rerandomised ciphertext cannot be linked to the ciphertexts it was made
// from, so B cannot tell which of its rows went into a sum, or whether a
// sum holds one row.
//
// Whoever holds both partial decryptions of a ciphertext learns its
// plaintext, and only that: in kura, A learns each group's sum (and nothing
// about B's individual values), and B, which never sees A's partials,
// learns only the number of sums. Holding a share makes a party a
// decryption oracle for the other: B decrypts whatever A sends it, so a
// semi-honest A that sends only rerandomised group sums learns only those.
// A malicious A could send B's individual ciphertexts instead; nothing
// here stops that.
//
// Outside the model, and not detected:
//   - Nothing proves a plaintext is in range. A malicious encryptor can
//     encrypt any group element (or values above the bound the decryptor
//     assumed) and so make sums wrong, or make them undecryptable
//     ([ErrOutOfRange]).
//   - Nothing proves knowledge of a share. A party that chooses its share
//     after seeing the other's can publish P_B = Q − P_A for a Q it knows
//     (a rogue key) and decrypt alone. [JointKey] refuses equal shares and
//     shares that cancel out, which catches accidents, not this.
//   - Partial decryptions carry no proof of correctness: a wrong one gives
//     a wrong sum or [ErrOutOfRange].
//
// Secret shares and encryption randomness are zeroised best effort
// ([KeyShare.Close]); copies the runtime or curve25519-voi make on the
// stack are out of reach. Key shares print and log as REDACTED.
// Encryption, rerandomisation and partial decryption run in constant time.
// Decryption does not: the discrete-log search takes time that depends on
// m, which the decrypting party learns anyway, and a plaintext outside the
// bound costs a full search.
package elgamal
