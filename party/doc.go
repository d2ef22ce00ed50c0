// Package party holds the keys that identify a party to a collaboration:
// an Ed25519 signing key (approvals, signatures on manifests and results) and
// an HPKE receiving key (secrets and results are sealed to it). The private
// half is an [Identity]; the public half is a [Card], a small JSON document a
// party shares with the others. Roles are not part of a card: they live in
// collaboration manifests.
//
// # Security model
//
// An Identity never leaves the party's machine: [Identity.Save] writes it
// with mode 0600 and refuses to overwrite; [Load] refuses a file that is
// readable by group or others. Private key types print REDACTED through fmt,
// log/slog and encoding/json. A Card is public and self-checking only in the
// sense that its fingerprint is recomputed by [ParseCard]; whether a card
// belongs to who it claims is established out of band, by comparing the
// fingerprint (for example over the phone). created_at is informational and is
// not covered by the fingerprint.
//
// [Identity.Sign] signs the message as given (pure Ed25519); callers include
// their own domain separation (a context string) in the message.
//
// # Card fingerprint
//
// The fingerprint is the lowercase hex SHA-256 of this canonical encoding,
// where u16(x) is x as a big-endian 16-bit integer:
//
//	"kura party card v1" || 0x00
//	u16(len(name))        || name (UTF-8)
//	u16(32)               || Ed25519 public key
//	u16(kem_id)
//	u16(len(public_key))  || HPKE public key (SerializePublicKey, RFC 9180)
//
// # Ciphertexts
//
// [Card.SealTo] uses HPKE base mode, single shot (RFC 9180), with KDF
// HKDF-SHA256 and AEAD AES-256-GCM, the caller's info and no AAD. Its output
// is
//
//	suite (1 byte) || enc || AEAD ciphertext
//
// where suite 0x01 is DHKEM(X25519, HKDF-SHA256) (KEM 0x0020) and suite 0x02
// is ML-KEM-768+X25519 (KEM 0x647a, "X-Wing"), both format version 1. Any
// other value is refused. The suite byte is not authenticated separately: the
// KEM, KDF and AEAD ids are already bound into the HPKE key schedule.
package party
