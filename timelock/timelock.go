package timelock

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"filippo.io/age/armor"
	"github.com/drand/drand/chain"
	"github.com/drand/drand/crypto"
	"github.com/drand/kyber"
	"github.com/drand/tlock"

	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/party"
)

// SealOptions configure Seal.
type SealOptions struct {
	// Until is the earliest time the file may be opened. It is rounded up
	// to the next round of the chain.
	Until time.Time
	// Chain is the chain to lock to; the zero value means Quicknet().
	Chain Chain
	// Recipients, when set, are the only parties who may open the file
	// after the release time (at most MaxRecipients). Without recipients
	// the output is drand's standard tlock format.
	Recipients []*party.Card
	// Network fetches the chain info when Chain.Info is not pinned; nil
	// means NewHTTPNetwork(Chain, nil, Logger).
	Network Network
	// AllowInsecure accepts a kura dev beacon's chain.
	AllowInsecure bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of keys; nil means crypto/rand.
	Rand io.Reader
	// Logger records the decision; nil discards.
	Logger *slog.Logger
}

// OpenOptions configure Open.
type OpenOptions struct {
	// Identity opens files sealed to recipients.
	Identity *party.Identity
	// Chain is the chain the file must be locked to; the zero value means
	// Quicknet(). A file locked to another chain is ErrWrongChain.
	Chain Chain
	// Network fetches the chain info and the round's beacon; nil means
	// NewHTTPNetwork(Chain, nil, Logger).
	Network Network
	// AllowInsecure accepts a kura dev beacon's chain.
	AllowInsecure bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger records the decision; nil discards.
	Logger *slog.Logger
}

func defaults(c *Chain, net *Network, now *func() time.Time, log **slog.Logger) error {
	if c.Hash == "" && len(c.URLs) == 0 && c.Info == nil {
		*c = Quicknet()
	}
	if err := checkHash(c.Hash); err != nil {
		return err
	}
	if *log == nil {
		*log = slog.New(slog.DiscardHandler)
	}
	if *net == nil {
		*net = NewHTTPNetwork(*c, nil, *log)
	}
	if *now == nil {
		*now = time.Now
	}
	return nil
}

// Seal time-locks src into dst and returns the registration of the sealed
// file (docs/spec/timelock.md §5). The registration's SHA-256 of the
// sealed file is computed on a second goroutine, which also writes to dst,
// while this one encrypts; dst need not be safe for concurrent use, since
// only that goroutine writes to it.
func Seal(ctx context.Context, dst io.Writer, src io.Reader, opts SealOptions) (*Registration, error) {
	if err := defaults(&opts.Chain, &opts.Network, &opts.Now, &opts.Logger); err != nil {
		return nil, err
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	now := opts.Now()
	if err := checkUntil(opts.Until, now); err != nil {
		return nil, err
	}
	if len(opts.Recipients) > MaxRecipients {
		return nil, fmt.Errorf("%w: %d recipients; at most %d", ErrMalformed, len(opts.Recipients), MaxRecipients)
	}
	info, err := resolve(ctx, opts.Chain, opts.Network, opts.AllowInsecure)
	if err != nil {
		return nil, err
	}
	round, err := info.RoundAt(opts.Until)
	if err != nil {
		return nil, err
	}
	release, err := info.TimeOf(round)
	if err != nil {
		return nil, err
	}
	// The registration needs the SHA-256 of the sealed file: dw computes it
	// on a second goroutine while this one encrypts.
	dw := newDigestWriter(dst)
	defer dw.Close()
	reg := &Registration{Version: RegistrationVersion, ChainHash: info.Hash, Round: round, ReleaseTime: release, SealedAt: now.UTC().Truncate(time.Second)}
	if len(opts.Recipients) == 0 {
		reg.Format = FormatTlock
		err = tlock.New(&tlockNet{info: info}).Encrypt(dw, src, round)
		if cerr := dw.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write: %w", cerr)
		}
		if err != nil {
			return nil, fmt.Errorf("tlock encrypt: %w", err)
		}
	} else {
		reg.Format = FormatKura
		reg.Recipients, err = sealEnvelope(ctx, dw, src, info, round, opts)
		if cerr := dw.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	sum, n := dw.Sum()
	reg.SealedSHA256, reg.SealedSize = hex.EncodeToString(sum), n
	opts.Logger.Info("timelock: sealed", "format", reg.Format, "chain_hash", info.Hash, "round", round,
		"release_time", release, "recipients", len(reg.Recipients), "sealed_sha256", reg.SealedSHA256)
	return reg, nil
}

func checkUntil(until, now time.Time) error {
	switch {
	case until.IsZero():
		return fmt.Errorf("%w: no release time given", ErrBadTime)
	case !until.After(now):
		return fmt.Errorf("%w: %s is in the past (now %s)", ErrBadTime, until.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case until.Sub(now) > MaxHorizon:
		return fmt.Errorf("%w: %s is more than 100 years ahead", ErrBadTime, until.UTC().Format(time.RFC3339))
	}
	return nil
}

// recipientInfo is the HPKE info binding a wrapped key to its chain and round.
func recipientInfo(chainHash [32]byte, round uint64) []byte {
	b := append([]byte("kura timelock v1 recipient\x00"), chainHash[:]...)
	return binary.BigEndian.AppendUint64(b, round)
}

// contentKey derives the payload key from the time-locked half, the
// recipients' half and the exact header bytes.
func contentKey(t, r, header []byte) (dataset.Key, error) {
	salt := sha256.Sum256(header)
	k, err := hkdf.Key(sha256.New, slices.Concat(t, r), salt[:], "kura timelock v1 content key", dataset.KeySize)
	if err != nil {
		return dataset.Key{}, err
	}
	defer clear(k)
	return dataset.KeyFromBytes(k)
}

const (
	payloadID     = "kura-timelock"
	payloadFormat = "octet-stream"
)

func sealEnvelope(ctx context.Context, dst io.Writer, src io.Reader, info *ChainInfo, round uint64, opts SealOptions) ([]string, error) {
	t := make([]byte, 16)
	r := make([]byte, 32)
	if _, err := io.ReadFull(opts.Rand, t); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(opts.Rand, r); err != nil {
		return nil, err
	}
	defer clear(t)
	defer clear(r)
	ct, err := tlock.TimeLock(*info.scheme, info.point(), round, t)
	if err != nil {
		return nil, fmt.Errorf("time-lock key: %w", err)
	}
	ctb, err := tlock.CiphertextToBytes(*info.scheme, ct)
	if err != nil {
		return nil, fmt.Errorf("time-lock key: %w", err)
	}
	e := &envelope{round: round, genesis: info.Genesis.Unix(), period: uint32(info.Period / time.Second), scheme: info.Scheme, tlockCT: ctb}
	hb, _ := hex.DecodeString(info.Hash)
	copy(e.chainHash[:], hb)
	hinfo := recipientInfo(e.chainHash, round)
	var fps []string
	for _, c := range opts.Recipients {
		if c == nil {
			return nil, fmt.Errorf("%w: nil recipient card", ErrMalformed)
		}
		var w wrapped
		fp, err := hex.DecodeString(c.Fingerprint)
		if err != nil || len(fp) != fingerprLen {
			return nil, fmt.Errorf("%w: card %q has a bad fingerprint", ErrMalformed, c.Name)
		}
		copy(w.fingerprint[:], fp)
		if w.ct, err = c.SealTo(r, hinfo); err != nil {
			return nil, fmt.Errorf("wrap key to %s: %w", c.Name, err)
		}
		e.recipients = append(e.recipients, w)
		fps = append(fps, c.Fingerprint)
	}
	header, err := e.marshal()
	if err != nil {
		return nil, err
	}
	if _, err := dst.Write(header); err != nil {
		return nil, err
	}
	key, err := contentKey(t, r, header)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	if err := dataset.Seal(ctx, dst, src, key, dataset.Header{DatasetID: payloadID, Format: payloadFormat}, dataset.Options{Rand: opts.Rand}); err != nil {
		return nil, fmt.Errorf("seal payload: %w", err)
	}
	return fps, nil
}

// header is a parsed header of either format, and the reader positioned
// after it.
type header struct {
	env  *envelope
	tl   *tlockHeader
	rest io.Reader
}

func (h *header) info() *Info {
	if h.env != nil {
		return h.env.info()
	}
	return h.tl.info()
}

func readHeader(src io.Reader) (*header, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	peek, err := br.Peek(8)
	if err != nil && len(peek) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrMalformed)
	}
	switch {
	case bytes.HasPrefix(peek, []byte(Magic)):
		e, err := readEnvelope(br)
		if err != nil {
			return nil, err
		}
		return &header{env: e, rest: br}, nil
	case bytes.HasPrefix([]byte(armorIntro), peek) && len(peek) == 8:
		br = bufio.NewReaderSize(armor.NewReader(br), 64<<10)
	case !bytes.HasPrefix([]byte(ageIntro), peek) || len(peek) < 8:
		return nil, fmt.Errorf("%w: neither a tlock file nor a kura time-lock envelope", ErrMalformed)
	}
	tl, err := readTlockHeader(br)
	if err != nil {
		return nil, err
	}
	return &header{tl: tl, rest: br}, nil
}

// Inspect reads the header of a sealed file and reports what it is locked
// to, without decrypting or contacting the chain.
func Inspect(src io.Reader) (*Info, error) {
	h, err := readHeader(src)
	if err != nil {
		return nil, err
	}
	return h.info(), nil
}

// Open opens a file sealed by Seal (or by drand's tlock tools) into dst.
// Before the release round it returns a *TooEarlyError without fetching
// anything. Payload chunks are written to dst only after they
// authenticated; on error dst may hold a prefix of the plaintext, which the
// caller must discard.
func Open(ctx context.Context, dst io.Writer, src io.Reader, opts OpenOptions) (*Info, error) {
	if err := defaults(&opts.Chain, &opts.Network, &opts.Now, &opts.Logger); err != nil {
		return nil, err
	}
	h, err := readHeader(src)
	if err != nil {
		return nil, err
	}
	in := h.info()
	log := opts.Logger.With("format", in.Format, "chain_hash", in.ChainHash, "round", in.Round)
	refuse := func(err error) (*Info, error) {
		log.Warn("timelock: open refused", "reason", err.Error())
		return in, err
	}
	if in.ChainHash != opts.Chain.Hash {
		return refuse(fmt.Errorf("%w: the file is locked to chain %s, the configured chain is %s: open it with that chain's URL and hash", ErrWrongChain, in.ChainHash, opts.Chain.Hash))
	}
	var mine *wrapped
	if h.env != nil {
		if opts.Identity == nil {
			return refuse(fmt.Errorf("%w: the file is sealed to %d recipient(s); give the identity of one of them", ErrNotRecipient, len(h.env.recipients)))
		}
		fp := opts.Identity.Card().Fingerprint
		for i := range h.env.recipients {
			if hex.EncodeToString(h.env.recipients[i].fingerprint[:]) == fp {
				mine = &h.env.recipients[i]
			}
		}
		if mine == nil {
			return refuse(fmt.Errorf("%w: %s (%.16s…) is not among the file's %d recipient(s)", ErrNotRecipient, opts.Identity.Card().Name, fp, len(h.env.recipients)))
		}
	}
	info, err := resolve(ctx, opts.Chain, opts.Network, opts.AllowInsecure)
	if err != nil {
		return refuse(err)
	}
	release, err := info.TimeOf(in.Round)
	if err != nil {
		return refuse(fmt.Errorf("%w: %w", ErrTampered, err))
	}
	in.ReleaseTime = release
	if h.env != nil && (h.env.genesis != info.Genesis.Unix() || time.Duration(h.env.period)*time.Second != info.Period || h.env.scheme != info.Scheme) {
		return refuse(fmt.Errorf("%w: header's genesis, period or scheme differ from chain %s", ErrTampered, info.Hash))
	}
	now := opts.Now()
	if now.Before(release) {
		return refuse(&TooEarlyError{Round: in.Round, ReleaseTime: release, Now: now})
	}
	b, err := opts.Network.Beacon(ctx, in.Round)
	if errors.Is(err, ErrTooEarly) {
		// The clock says the round is out but the chain has not published it.
		return refuse(&TooEarlyError{Round: in.Round, ReleaseTime: release, Now: now})
	}
	if err != nil {
		return refuse(fmt.Errorf("fetch round %d: %w", in.Round, err))
	}
	if b.Round != in.Round {
		return refuse(fmt.Errorf("%w: asked for round %d, got %d", ErrBadBeacon, in.Round, b.Round))
	}
	// The beacon's signature is verified against the chain's public key
	// before it is used, by tlock.TimeUnlock (through tlock's Decrypt for
	// tlock files); ChainInfo.VerifyBeacon runs only when opening failed,
	// to tell a bad beacon from a tampered file.
	if h.tl != nil {
		err = tlock.New(&tlockNet{info: info, round: b.Round, sig: b.Signature}).Strict().Decrypt(dst, io.MultiReader(bytes.NewReader(h.tl.raw), h.rest))
		if err != nil {
			if verr := info.VerifyBeacon(b.Round, b.Signature); verr != nil {
				return refuse(verr)
			}
			return refuse(fmt.Errorf("%w: %w", ErrTampered, err))
		}
	} else if err := openEnvelope(ctx, dst, h, mine, info, b, opts.Identity); err != nil {
		return refuse(err)
	}
	log.Info("timelock: opened", "release_time", release)
	return in, nil
}

func openEnvelope(ctx context.Context, dst io.Writer, h *header, mine *wrapped, info *ChainInfo, b *Beacon, id *party.Identity) error {
	ct, err := tlock.BytesToCiphertext(*info.scheme, h.env.tlockCT)
	if err != nil {
		return fmt.Errorf("%w: time-lock ciphertext: %w", ErrTampered, err)
	}
	t, err := tlock.TimeUnlock(*info.scheme, info.point(), chain.Beacon{Round: b.Round, Signature: b.Signature}, ct)
	if err != nil {
		if verr := info.VerifyBeacon(b.Round, b.Signature); verr != nil {
			return verr
		}
		return fmt.Errorf("%w: time-lock key does not decrypt: %w", ErrTampered, err)
	}
	defer clear(t)
	r, err := id.Open(mine.ct, recipientInfo(h.env.chainHash, h.env.round))
	if err != nil {
		return fmt.Errorf("%w: wrapped key does not open: %w", ErrTampered, err)
	}
	defer clear(r)
	key, err := contentKey(t, r, h.env.raw)
	if err != nil {
		return err
	}
	defer key.Wipe()
	dh, err := dataset.Open(ctx, dst, h.rest, key, dataset.Options{})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: payload: %w", ErrTampered, err)
	}
	if dh.DatasetID != payloadID || dh.Format != payloadFormat {
		return fmt.Errorf("%w: payload is not a time-lock payload", ErrTampered)
	}
	return nil
}

// tlockNet adapts a verified ChainInfo (and, when opening, the verified
// beacon of one round) to tlock.Network, so that tlock itself does no I/O.
type tlockNet struct {
	info  *ChainInfo
	round uint64
	sig   []byte
}

func (n *tlockNet) ChainHash() string { return n.info.Hash }
func (n *tlockNet) Current(t time.Time) uint64 {
	return chain.CurrentRound(t.Unix(), n.info.Period, n.info.Genesis.Unix())
}
func (n *tlockNet) PublicKey() kyber.Point { return n.info.point() }
func (n *tlockNet) Scheme() crypto.Scheme  { return *n.info.scheme }
func (n *tlockNet) Signature(round uint64) ([]byte, error) {
	if n.sig == nil || round != n.round {
		return nil, fmt.Errorf("round %d not fetched", round)
	}
	return n.sig, nil
}
func (n *tlockNet) SwitchChainHash(string) error { return ErrWrongChain }
