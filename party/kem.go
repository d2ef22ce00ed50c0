package party

import (
	"crypto/ecdh"
	"crypto/hpke"
	"fmt"
)

// KEMChoice selects the KEM of a party's receiving key. The zero value is
// [KEMX25519].
type KEMChoice int

const (
	// KEMX25519 is DHKEM(X25519, HKDF-SHA256), HPKE KEM id 0x0020.
	KEMX25519 KEMChoice = iota
	// KEMMLKEM768X25519 is the ML-KEM-768+X25519 hybrid (X-Wing), HPKE KEM
	// id 0x647a: confidentiality holds as long as either part is unbroken.
	KEMMLKEM768X25519
)

// kemInfo describes one supported KEM.
type kemInfo struct {
	name   string
	id     uint16
	suite  byte // ciphertext prefix
	pubLen int
	encLen int
	kem    func() hpke.KEM
}

var kems = [...]kemInfo{
	KEMX25519:         {"x25519", 0x0020, 0x01, 32, 32, func() hpke.KEM { return hpke.DHKEM(ecdh.X25519()) }},
	KEMMLKEM768X25519: {"mlkem768-x25519", 0x647a, 0x02, 1184 + 32, 1088 + 32, hpke.MLKEM768X25519},
}

// String returns the KEM's name as written in cards: "x25519" or
// "mlkem768-x25519".
func (k KEMChoice) String() string {
	if k.valid() {
		return kems[k].name
	}
	return fmt.Sprintf("KEMChoice(%d)", int(k))
}

// ID returns the KEM's HPKE identifier.
func (k KEMChoice) ID() uint16 {
	if k.valid() {
		return kems[k].id
	}
	return 0
}

func (k KEMChoice) valid() bool { return k >= 0 && int(k) < len(kems) }

// ParseKEM returns the KEMChoice named name ("x25519" or "mlkem768-x25519").
func ParseKEM(name string) (KEMChoice, error) {
	for i, k := range kems {
		if k.name == name {
			return KEMChoice(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want x25519 or mlkem768-x25519)", ErrUnsupportedKEM, name)
}

// kemByID returns the KEMChoice with HPKE id id.
func kemByID(id uint16) (KEMChoice, bool) {
	for i, k := range kems {
		if k.id == id {
			return KEMChoice(i), true
		}
	}
	return 0, false
}

// kemBySuite returns the KEMChoice whose ciphertext prefix is b.
func kemBySuite(b byte) (KEMChoice, bool) {
	for i, k := range kems {
		if k.suite == b {
			return KEMChoice(i), true
		}
	}
	return 0, false
}
