package psi

import (
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/kura-cc/kura/mpc/internal/parallel"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"sync"

	"github.com/cloudflare/circl/group"
	"github.com/oasisprotocol/curve25519-voi/curve"
)

// Version is the protocol version carried in every message.
const Version = 1

// ElementSize is the size in bytes of an encoded group element.
const ElementSize = 32

// MaxElements is the most elements any list in any message may hold,
// whatever the [Config] says.
const MaxElements = 1 << 24

// DefaultMaxElements is [Config.MaxElements] when it is zero.
const DefaultMaxElements = 1 << 21

// dstPrefix starts the hash-to-group domain separation tag; the session id
// follows it.
const dstPrefix = "kura-psi-v1 ristretto255_XMD:SHA-512_R255MAP_RO_"

// keyDST separates the hash that turns 64 random bytes into a secret scalar.
const keyDST = "kura-psi-v1 secret scalar"

// ErrPSI is the root of every error this package returns.
var ErrPSI = errors.New("psi")

// Errors returned by this package; each wraps [ErrPSI].
var (
	// ErrConfig reports an invalid Config or input set.
	ErrConfig = fmt.Errorf("%w: invalid configuration", ErrPSI)
	// ErrMalformed reports a message that does not parse: truncated,
	// trailing bytes, wrong type, zero or inconsistent counts.
	ErrMalformed = fmt.Errorf("%w: malformed message", ErrPSI)
	// ErrVersion reports a message of an unknown protocol version.
	ErrVersion = fmt.Errorf("%w: unsupported version", ErrPSI)
	// ErrTooLarge reports a message with more elements than allowed.
	ErrTooLarge = fmt.Errorf("%w: message too large", ErrPSI)
	// ErrElement reports a non-canonical element encoding or the identity.
	ErrElement = fmt.Errorf("%w: invalid group element", ErrPSI)
	// ErrDuplicate reports a repeated element in a message.
	ErrDuplicate = fmt.Errorf("%w: duplicate", ErrPSI)
	// ErrSession reports a message bound to another session.
	ErrSession = fmt.Errorf("%w: wrong session", ErrPSI)
	// ErrMode reports a message for another mode, or a call the session's
	// mode does not allow.
	ErrMode = fmt.Errorf("%w: wrong mode", ErrPSI)
	// ErrReplay reports a second message, or second call, for a session
	// whose secret has already been used.
	ErrReplay = fmt.Errorf("%w: session already used", ErrPSI)
	// ErrMismatch reports a response whose first list does not answer the
	// request that was sent.
	ErrMismatch = fmt.Errorf("%w: response does not match request", ErrPSI)
	// ErrOverflow reports an integer sum that does not fit in an int64.
	ErrOverflow = fmt.Errorf("%w: sum overflows", ErrPSI)
)

// SessionID binds every element and message to one session.
type SessionID [32]byte

// NewSessionID returns a fresh session id read from rnd, or from
// crypto/rand when rnd is nil.
func NewSessionID(rnd io.Reader) (SessionID, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var id SessionID
	if _, err := io.ReadFull(rnd, id[:]); err != nil {
		return SessionID{}, fmt.Errorf("psi: session id: %w", err)
	}
	return id, nil
}

// Mode says what A learns.
type Mode uint8

const (
	// ModeRows lets A learn which of its rows are in the intersection.
	ModeRows Mode = 1
	// ModeCardinality lets A learn only the size of the intersection.
	ModeCardinality Mode = 2
	// ModeGroups lets A learn the size of the intersection of each of its
	// groups of identifiers with B's set, and B the size of each group.
	ModeGroups Mode = 3
)

// MaxGroups is the most groups a ModeGroups request may hold.
const MaxGroups = 1 << 16

func (m Mode) valid() bool { return m == ModeRows || m == ModeCardinality || m == ModeGroups }

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case ModeRows:
		return "rows"
	case ModeCardinality:
		return "cardinality"
	case ModeGroups:
		return "groups"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Config is what both parties of a session agree on.
type Config struct {
	// Session is the session id; it must not be all zero.
	Session SessionID
	// Mode is ModeRows, ModeCardinality or ModeGroups.
	Mode Mode
	// MaxElements bounds each party's number of distinct identifiers and
	// every list a peer may send. Zero means DefaultMaxElements; it may not
	// exceed MaxElements.
	MaxElements int
	// Workers is the number of goroutines hashing and exponentiating. Zero
	// means runtime.GOMAXPROCS(0).
	Workers int
	// PayloadSize, in ModeGroups, is the size of the payload B sends with
	// each of its elements (NewPayloadReceiver), 0 for none; A refuses a
	// response with another.
	PayloadSize int
}

func (c Config) normalize() (Config, error) {
	if c.Session == (SessionID{}) {
		return c, fmt.Errorf("%w: zero session id", ErrConfig)
	}
	if !c.Mode.valid() {
		return c, fmt.Errorf("%w: unknown mode %d", ErrConfig, c.Mode)
	}
	if c.MaxElements == 0 {
		c.MaxElements = DefaultMaxElements
	}
	if c.MaxElements < 1 || c.MaxElements > MaxElements {
		return c, fmt.Errorf("%w: MaxElements %d outside [1, %d]", ErrConfig, c.MaxElements, MaxElements)
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Workers < 0 {
		return c, fmt.Errorf("%w: negative Workers", ErrConfig)
	}
	if c.PayloadSize < 0 || c.PayloadSize > MaxPayloadSize || c.PayloadSize > 0 && c.Mode != ModeGroups {
		return c, fmt.Errorf("%w: PayloadSize %d (ModeGroups only, at most %d)", ErrConfig, c.PayloadSize, MaxPayloadSize)
	}
	return c, nil
}

// MaxMessageSize is the largest encoded Response (and so the largest
// message) a session with this Config can produce; transports should cap
// the bytes they read at it.
func (c Config) MaxMessageSize() int {
	c, err := c.normalize()
	if err != nil {
		return 0
	}
	n := responseHeaderSize + 4 + 2*c.MaxElements*ElementSize
	if c.Mode == ModeGroups {
		n += 2 + c.MaxElements*c.PayloadSize
	}
	return n
}

func (c Config) dst() []byte {
	dst := make([]byte, 0, len(dstPrefix)+len(c.Session))
	dst = append(dst, dstPrefix...)
	return append(dst, c.Session[:]...)
}

// Element is the canonical 32-byte encoding of a ristretto255 element.
type Element [ElementSize]byte

// newKey returns a fresh uniformly random non-zero scalar from crypto/rand.
func newKey() (group.Scalar, error) {
	var buf [64]byte
	defer clear(buf[:])
	for {
		if _, err := io.ReadFull(rand.Reader, buf[:]); err != nil {
			return nil, fmt.Errorf("psi: secret scalar: %w", err)
		}
		k := group.Ristretto255.HashToScalar(buf[:], []byte(keyDST))
		if !k.IsZero() {
			return k, nil
		}
	}
}

// zeroise overwrites k, best effort: copies made by the group library on
// the stack are out of reach.
func zeroise(k group.Scalar) {
	if k != nil {
		k.SetUint64(0)
	}
}

// hashBlind sets out[i] = H(ids[i])^k in parallel.
func hashBlind(workers int, dst []byte, ids [][]byte, k group.Scalar, out []Element) {
	ks := voiScalar(k)
	defer ks.Zero()
	_ = parallel.For(workers, len(ids), func(lo, hi int) error {
		h := newHasher(dst)
		var x curve.RistrettoPoint
		for i := lo; i < hi; i++ {
			h.hash(&x, ids[i])
			x.Mul(&x, ks)
			encodePoint(&x, &out[i])
		}
		return nil
	})
}

// exp sets out[i] = in[i]^k in parallel, checking every input.
func exp(workers int, in []Element, k group.Scalar, out []Element) error {
	ks := voiScalar(k)
	defer ks.Zero()
	return parallel.For(workers, len(in), func(lo, hi int) error {
		var x curve.RistrettoPoint
		for i := lo; i < hi; i++ {
			if err := decodePoint(&in[i], &x); err != nil {
				return fmt.Errorf("%w: element %d", err, i)
			}
			x.Mul(&x, ks)
			encodePoint(&x, &out[i])
		}
		return nil
	})
}

// validate checks every element of list in parallel.
func validate(workers int, list []Element) error {
	return parallel.For(workers, len(list), func(lo, hi int) error {
		var x curve.RistrettoPoint
		for i := lo; i < hi; i++ {
			if err := decodePoint(&list[i], &x); err != nil {
				return fmt.Errorf("%w: element %d", err, i)
			}
		}
		return nil
	})
}

// distinct reports the first repeated element of list. Lists of more than
// a few thousand elements are checked in parallel, one shard of the
// elements per core.
func distinct(list []Element) error {
	shards := runtime.GOMAXPROCS(0)
	if len(list) < 1<<12 || shards < 2 {
		shards = 1
	}
	shards = min(shards, 256)
	first := make([]int, shards) // the first repeat in each shard, or -1
	var wg sync.WaitGroup
	for s := range shards {
		wg.Go(func() {
			first[s] = -1
			seen := make(map[Element]struct{}, len(list)/shards+len(list)/(8*shards))
			for i := range list {
				if shards > 1 && int(list[i][0])%shards != s {
					continue
				}
				if _, dup := seen[list[i]]; dup {
					first[s] = i
					return
				}
				seen[list[i]] = struct{}{}
			}
		})
	}
	wg.Wait()
	i := -1
	for _, f := range first {
		if f >= 0 && (i < 0 || f < i) {
			i = f
		}
	}
	if i >= 0 {
		return fmt.Errorf("%w: element %d repeats", ErrDuplicate, i)
	}
	return nil
}

// shuffle permutes n items in place with swap, using a ChaCha8 stream
// keyed from crypto/rand.
func shuffle(n int, swap func(i, j int)) error {
	var seed [32]byte
	defer clear(seed[:])
	if _, err := io.ReadFull(rand.Reader, seed[:]); err != nil {
		return fmt.Errorf("psi: shuffle: %w", err)
	}
	mrand.New(mrand.NewChaCha8(seed)).Shuffle(n, swap)
	return nil
}
