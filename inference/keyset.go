package inference

import (
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// defaultMaxSeen bounds the encapsulated keys a gateway remembers per key
// (about 32 bytes and map overhead each). A key whose set is full accepts
// no more requests; when the current keys fill up the set rotates early.
const defaultMaxSeen = 1 << 18

// KeySet holds a gateway's HPKE keys (docs/spec/inference.md §2): a
// current generation, one X25519 and one MLKEM768X25519 key, whose
// configurations the gateway serves, and the previous generation, still
// accepted so that clients holding the old configurations keep working
// until the next rotation. Each key remembers the encapsulated keys of the
// requests it answered, to refuse replays. It is safe for concurrent use.
type KeySet struct {
	rotateEvery time.Duration
	now         func() time.Time
	maxSeen     int

	mu        sync.Mutex
	current   []*gatewayKey
	previous  []*gatewayKey
	rotatedAt time.Time
	nextID    byte
	configs   []byte // application/ohttp-keys of current
}

// gatewayKey is one key of a KeySet with its replay set.
type gatewayKey struct {
	cfg  KeyConfig
	priv hpke.PrivateKey
	seen map[[sha256.Size]byte]struct{}
}

// NewKeySet returns a key set with fresh keys that rotates every
// rotateEvery (0: only when Rotate is called or a replay set fills up). A
// key thus lives for up to twice rotateEvery.
func NewKeySet(rotateEvery time.Duration) (*KeySet, error) {
	ks := &KeySet{rotateEvery: rotateEvery, now: time.Now, maxSeen: defaultMaxSeen}
	if err := ks.Rotate(); err != nil {
		return nil, err
	}
	return ks, nil
}

// Rotate makes a new generation of keys current, keeps the current one as
// the previous and retires the previous one, with its replay sets.
func (ks *KeySet) Rotate() error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.rotate()
}

func (ks *KeySet) rotate() error {
	var gen []*gatewayKey
	held := func(id byte) bool {
		return slices.ContainsFunc(ks.current, func(k *gatewayKey) bool { return k.cfg.KeyID == id }) ||
			slices.ContainsFunc(gen, func(k *gatewayKey) bool { return k.cfg.KeyID == id })
	}
	for _, kem := range []uint16{KEMMLKEM768X25519, KEMX25519} {
		k, _ := kemFor(kem)
		priv, err := k.kem.GenerateKey()
		if err != nil {
			return fmt.Errorf("inference: generating a key: %w", err)
		}
		for held(ks.nextID) {
			ks.nextID++
		}
		gen = append(gen, newGatewayKey(ks.nextID, priv))
		ks.nextID++
	}
	cfgs := make([]KeyConfig, len(gen))
	for i, k := range gen {
		cfgs[i] = k.cfg
	}
	enc, err := MarshalKeyConfigs(cfgs)
	if err != nil {
		return err
	}
	ks.previous, ks.current, ks.configs = ks.current, gen, enc
	ks.rotatedAt = ks.now()
	return nil
}

// newGatewayKey returns the key configuration of priv under id, offering
// both AEADs with HKDF-SHA256.
func newGatewayKey(id byte, priv hpke.PrivateKey) *gatewayKey {
	return &gatewayKey{
		cfg: KeyConfig{KeyID: id, KEM: priv.KEM().ID(), PublicKey: priv.PublicKey().Bytes(), Suites: []SymmetricSuite{
			{KDFHKDFSHA256, AEADAES128GCM}, {KDFHKDFSHA256, AEADChaCha20Poly1305},
		}},
		priv: priv,
		seen: map[[sha256.Size]byte]struct{}{},
	}
}

// rotateIfDue rotates when the current generation is older than
// rotateEvery. A failure keeps the keys (it cannot happen short of a
// broken random source).
func (ks *KeySet) rotateIfDue() {
	if ks.rotateEvery > 0 && ks.now().Sub(ks.rotatedAt) >= ks.rotateEvery {
		_ = ks.rotate()
	}
}

// Configs returns the current key configurations as application/ohttp-keys,
// the bytes a gateway serves at KeysPath and binds into its attestation.
func (ks *KeySet) Configs() []byte {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.rotateIfDue()
	return slices.Clone(ks.configs)
}

// LogValue keeps private keys out of logs: it shows the key ids only.
func (ks *KeySet) LogValue() slog.Value {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ids := func(keys []*gatewayKey) []int {
		var out []int
		for _, k := range keys {
			out = append(out, int(k.cfg.KeyID))
		}
		return out
	}
	return slog.GroupValue(slog.Any("current", ids(ks.current)), slog.Any("previous", ids(ks.previous)), slog.String("private_keys", "REDACTED"))
}

// lookup returns the held key for a request header, or ErrUnknownKey.
func (ks *KeySet) lookup(h requestHeader) (*gatewayKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.rotateIfDue()
	for _, k := range slices.Concat(ks.current, ks.previous) {
		if k.cfg.KeyID != h.keyID {
			continue
		}
		if !k.cfg.offers(h.suite) || !supported(h.suite) {
			return nil, fmt.Errorf("%w: key %d does not offer %s", ErrUnknownKey, h.keyID, h.suite)
		}
		if len(k.seen) >= ks.maxSeen {
			return nil, fmt.Errorf("%w: key %d accepts no more requests", ErrUnknownKey, h.keyID)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: no key %d", ErrUnknownKey, h.keyID)
}

// checkFresh refuses an encapsulated key already answered under k.
func (ks *KeySet) checkFresh(k *gatewayKey, enc []byte) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if _, ok := k.seen[sha256.Sum256(enc)]; ok {
		return fmt.Errorf("%w: under key %d", ErrReplay, k.cfg.KeyID)
	}
	return nil
}

// record remembers enc under k, refusing a replay (ErrReplay) and a key
// that is retired or full (ErrUnknownKey); it never forgets an entry of a
// held key. The request that fills the current generation's set rotates
// the keys.
func (ks *KeySet) record(k *gatewayKey, enc []byte) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if !slices.Contains(ks.current, k) && !slices.Contains(ks.previous, k) {
		return fmt.Errorf("%w: key %d was retired", ErrUnknownKey, k.cfg.KeyID)
	}
	h := sha256.Sum256(enc)
	if _, ok := k.seen[h]; ok {
		return fmt.Errorf("%w: under key %d", ErrReplay, k.cfg.KeyID)
	}
	if len(k.seen) >= ks.maxSeen {
		return fmt.Errorf("%w: key %d accepts no more requests", ErrUnknownKey, k.cfg.KeyID)
	}
	k.seen[h] = struct{}{}
	if len(k.seen) >= ks.maxSeen && slices.Contains(ks.current, k) {
		_ = ks.rotate()
	}
	return nil
}
