package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/drand/drand/chain"
	"github.com/drand/drand/crypto"
	"github.com/drand/kyber"
	"github.com/drand/tlock"

	"github.com/kura-cc/kura/timelock"
	"github.com/kura-cc/kura/timelock/beacon"
)

// TimelockConfig configures Timelock.
type TimelockConfig struct {
	// Size is the plaintext file's size in bytes.
	Size int64
	// Pairs is how many alternated pairs measure each figure.
	Pairs int
	// Dir holds the benchmark's files; empty means a new directory under
	// the system's temporary directory, removed afterwards.
	Dir  string
	JSON bool
}

// Timelock measures sealing and opening a Size-byte file with package
// timelock (drand's tlock format, what `kura timelock seal` writes without
// recipients) against drand's tlock library (tlock.New(network).Encrypt and
// Decrypt) on the same file, to the same round of the same chain: a dev
// beacon in this process, its beacon computed once, so that neither side
// waits on a network. Both read the plaintext or sealed file from disk and
// write their output to a file in the same directory, without fsync. It
// prints rates in MiB/s and the growth of the process's peak resident
// memory while sealing.
func Timelock(ctx context.Context, cfg TimelockConfig, w io.Writer) error {
	if cfg.Size <= 0 || cfg.Pairs <= 0 {
		return fmt.Errorf("%w: --size and --pairs must be positive", ErrUsage)
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "kura-bench-timelock-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	tl, err := newTimelockFixture(dir, cfg.Size)
	if err != nil {
		return err
	}
	mib := float64(cfg.Size) / (1 << 20)
	rate := func(op func() error) Variant {
		return func(ctx context.Context) (float64, error) {
			start := time.Now()
			if err := op(); err != nil {
				return 0, err
			}
			return mib / time.Since(start).Seconds(), nil
		}
	}
	figs := []Figure{
		{Name: "timelock seal", Baseline: "tlock v1.1.0 Encrypt", Unit: "MiB/s", Target: "≥ 0.9×"},
		{Name: "timelock open", Baseline: "tlock v1.1.0 Decrypt", Unit: "MiB/s", Target: "≥ 0.9×"},
		{Name: "timelock seal, peak RSS growth", Baseline: "tlock v1.1.0 Encrypt", Unit: "MiB"},
	}
	if err := Alternate(ctx, &figs[0], cfg.Pairs, rate(tl.tlockSeal), rate(tl.kuraSeal)); err != nil {
		return err
	}
	if err := Alternate(ctx, &figs[1], cfg.Pairs, rate(tl.tlockOpen), rate(tl.kuraOpen)); err != nil {
		return err
	}
	if rssNow() > 0 {
		if err := Alternate(ctx, &figs[2], cfg.Pairs, rssGrowth(tl.tlockSeal), rssGrowth(tl.kuraSeal)); err != nil {
			return err
		}
	} else {
		figs = figs[:2]
	}
	if !cfg.JSON {
		fmt.Fprintf(w, "%s file, %d alternated pairs; both sides read and write files in %s\n", sizeString(cfg.Size), cfg.Pairs, dir)
	}
	return WriteFigures(w, figs, cfg.JSON)
}

// timelockFixture is a dev beacon, a plaintext file and that file sealed.
type timelockFixture struct {
	dir      string
	plain    string // plaintext file
	sealed   string // plain, sealed by kura (tlock format)
	chain    timelock.Chain
	round    uint64
	sealAt   time.Time
	openAt   time.Time
	kuraNet  *offlineNetwork
	tlockNet *tlockNetwork
}

func newTimelockFixture(dir string, size int64) (*timelockFixture, error) {
	sealAt := time.Now().Truncate(time.Second)
	openAt := sealAt.Add(time.Minute)
	b, err := beacon.New(beacon.Config{Period: time.Second, Genesis: sealAt.Add(-time.Hour), Now: func() time.Time { return openAt }})
	if err != nil {
		return nil, err
	}
	info, err := chain.InfoFromJSON(bytes.NewReader(b.InfoJSON()))
	if err != nil {
		return nil, err
	}
	scheme, err := crypto.SchemeFromName(info.Scheme)
	if err != nil {
		return nil, err
	}
	round := chain.CurrentRound(sealAt.Add(2*time.Second).Unix(), info.Period, info.GenesisTime)
	sig, err := b.Sign(round)
	if err != nil {
		return nil, err
	}
	// Both sides hold the chain's parsed info, as each CLI does once per
	// process: kura's pinned in the Chain, tlock's in its network.
	pinned, err := timelock.ParseChainInfo(b.InfoJSON())
	if err != nil {
		return nil, err
	}
	tl := &timelockFixture{
		dir:      dir,
		plain:    filepath.Join(dir, "plain"),
		sealed:   filepath.Join(dir, "plain.tlock"),
		chain:    timelock.Chain{Hash: b.ChainHash(), Info: pinned},
		sealAt:   sealAt,
		openAt:   openAt,
		kuraNet:  &offlineNetwork{info: b.InfoJSON(), round: round, sig: sig},
		tlockNet: &tlockNetwork{hash: b.ChainHash(), info: info, scheme: *scheme, round: round, sig: sig},
	}
	if err := writeZeros(tl.plain, size); err != nil {
		return nil, err
	}
	// Seal once to learn the round kura picks, and to have a file to open.
	reg, err := tl.seal(tl.sealed)
	if err != nil {
		return nil, err
	}
	if reg.Round != round {
		return nil, fmt.Errorf("bench: kura sealed to round %d, the baseline would seal to %d", reg.Round, round)
	}
	tl.round = round
	return tl, nil
}

// writeZeros writes a file of size zero bytes (the ciphers do not care
// what they encrypt).
func writeZeros(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// fileToFile opens src, creates dst and runs op between them.
func fileToFile(src, dst string, op func(w io.Writer, r io.Reader) error) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := op(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (tl *timelockFixture) seal(dst string) (*timelock.Registration, error) {
	var reg *timelock.Registration
	err := fileToFile(tl.plain, dst, func(w io.Writer, r io.Reader) (err error) {
		reg, err = timelock.Seal(context.Background(), w, r, timelock.SealOptions{
			Until: tl.sealAt.Add(2 * time.Second), Chain: tl.chain, Network: tl.kuraNet,
			AllowInsecure: true, Now: func() time.Time { return tl.sealAt },
		})
		return err
	})
	return reg, err
}

func (tl *timelockFixture) kuraSeal() error {
	_, err := tl.seal(filepath.Join(tl.dir, "kura.tlock"))
	return err
}

func (tl *timelockFixture) tlockSeal() error {
	return fileToFile(tl.plain, filepath.Join(tl.dir, "tlock.tlock"), func(w io.Writer, r io.Reader) error {
		return tlock.New(tl.tlockNet).Encrypt(w, r, tl.round)
	})
}

func (tl *timelockFixture) kuraOpen() error {
	return fileToFile(tl.sealed, filepath.Join(tl.dir, "kura.plain"), func(w io.Writer, r io.Reader) error {
		_, err := timelock.Open(context.Background(), w, r, timelock.OpenOptions{
			Chain: tl.chain, Network: tl.kuraNet, AllowInsecure: true, Now: func() time.Time { return tl.openAt },
		})
		return err
	})
}

func (tl *timelockFixture) tlockOpen() error {
	return fileToFile(tl.sealed, filepath.Join(tl.dir, "tlock.plain"), func(w io.Writer, r io.Reader) error {
		return tlock.New(tl.tlockNet).Strict().Decrypt(w, r)
	})
}

// offlineNetwork is a timelock.Network serving a dev beacon's chain info
// and the signature of one round, computed in advance.
type offlineNetwork struct {
	info  []byte
	round uint64
	sig   []byte
}

func (n *offlineNetwork) Info(context.Context) ([]byte, error) { return n.info, nil }

func (n *offlineNetwork) Beacon(_ context.Context, round uint64) (*timelock.Beacon, error) {
	if round != n.round {
		return nil, fmt.Errorf("bench: round %d: %w", round, timelock.ErrTooEarly)
	}
	return &timelock.Beacon{Round: round, Signature: n.sig}, nil
}

// tlockNetwork is the same chain and round as a tlock.Network.
type tlockNetwork struct {
	hash   string
	info   *chain.Info
	scheme crypto.Scheme
	round  uint64
	sig    []byte
}

func (n *tlockNetwork) ChainHash() string { return n.hash }
func (n *tlockNetwork) Current(t time.Time) uint64 {
	return chain.CurrentRound(t.Unix(), n.info.Period, n.info.GenesisTime)
}
func (n *tlockNetwork) PublicKey() kyber.Point       { return n.info.PublicKey }
func (n *tlockNetwork) Scheme() crypto.Scheme        { return n.scheme }
func (n *tlockNetwork) SwitchChainHash(string) error { return errors.New("bench: one chain only") }
func (n *tlockNetwork) Signature(round uint64) ([]byte, error) {
	if round != n.round {
		return nil, fmt.Errorf("bench: round %d not published", round)
	}
	return n.sig, nil
}

// rssGrowth measures how far op raises the process's peak resident set
// above what it holds at rest, in MiB: the heap is collected and returned
// to the system first, and the kernel's peak reset (Linux).
func rssGrowth(op func() error) Variant {
	return func(context.Context) (float64, error) {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		base := rssNow()
		if err := op(); err != nil {
			return 0, err
		}
		return float64(max(peakRSS()-base, 0)) / (1 << 20), nil
	}
}

// rssNow returns the process's resident set size (VmRSS), or 0 if unknown.
func rssNow() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// ParseSize reads a size in bytes: a whole number, optionally followed by
// KiB, MiB or GiB.
func ParseSize(size string) (int64, error) {
	s, mult := size, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%w: size %q: want a positive whole number, optionally with KiB, MiB or GiB", ErrUsage, size)
	}
	return n * mult, nil
}

func sizeString(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
