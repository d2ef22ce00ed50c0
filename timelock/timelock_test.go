package timelock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drand/tlock"
	tlockhttp "github.com/drand/tlock/networks/http"

	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/timelock/beacon"
)

// clock is a settable clock shared by a dev beacon and the code under test,
// so that no test waits for a round.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	clk    *clock
	beacon *beacon.Beacon
	chain  Chain
	url    string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	clk := &clock{t: time.Now().Truncate(time.Second)}
	b, err := beacon.New(beacon.Config{Period: time.Second, Genesis: clk.Now().Add(-time.Hour), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	return &fixture{clk: clk, beacon: b, chain: Chain{Hash: b.ChainHash(), URLs: []string{srv.URL}}, url: srv.URL}
}

func (f *fixture) seal(t testing.TB, plaintext []byte, until time.Duration, to ...*party.Card) ([]byte, *Registration) {
	t.Helper()
	var out bytes.Buffer
	reg, err := Seal(context.Background(), &out, bytes.NewReader(plaintext), SealOptions{
		Until: f.clk.Now().Add(until), Chain: f.chain, Recipients: to, AllowInsecure: true, Now: f.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), reg
}

func (f *fixture) open(sealed []byte, id *party.Identity) ([]byte, error) {
	var out bytes.Buffer
	_, err := Open(context.Background(), &out, bytes.NewReader(sealed), OpenOptions{Identity: id, Chain: f.chain, AllowInsecure: true, Now: f.clk.Now})
	return out.Bytes(), err
}

func identity(t testing.TB, name string) *party.Identity {
	t.Helper()
	id, err := party.Generate(name, party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestQuicknetPinned(t *testing.T) {
	q := Quicknet()
	if q.Info.Hash != QuicknetHash || q.Info.Scheme != "bls-unchained-g1-rfc9380" || q.Info.Period != 3*time.Second || q.Info.BeaconID != "quicknet" {
		t.Fatalf("pinned quicknet info: %+v", q.Info)
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	alice, bob := identity(t, "alice"), identity(t, "bob")
	msg := bytes.Repeat([]byte("the will of the late Mr. X. "), 100000) // several chunks
	for _, tc := range []struct {
		name string
		to   []*party.Card
		id   *party.Identity
		fmt  string
	}{
		{"tlock", nil, nil, FormatTlock},
		{"recipients", []*party.Card{alice.Card(), bob.Card()}, bob, FormatKura},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, reg := f.seal(t, msg, 2*time.Second, tc.to...)
			if reg.Format != tc.fmt || reg.ChainHash != f.chain.Hash || len(reg.Recipients) != len(tc.to) {
				t.Fatalf("registration %+v", reg)
			}
			in, err := Inspect(bytes.NewReader(sealed))
			if err != nil {
				t.Fatal(err)
			}
			if in.Round != reg.Round || in.Format != tc.fmt {
				t.Fatalf("inspect %+v, registration %+v", in, reg)
			}
			if tc.fmt == FormatKura && !in.ReleaseTime.Equal(reg.ReleaseTime) {
				t.Fatalf("inspect release %s, registration %s", in.ReleaseTime, reg.ReleaseTime)
			}
			// Too early: refused offline with the release time.
			_, err = f.open(sealed, tc.id)
			var early *TooEarlyError
			if !errors.As(err, &early) || !errors.Is(err, ErrTooEarly) || !early.ReleaseTime.Equal(reg.ReleaseTime) || !strings.Contains(err.Error(), reg.ReleaseTime.Format(time.RFC3339)) {
				t.Fatalf("early open: %v", err)
			}
			f.clk.Add(3 * time.Second)
			got, err := f.open(sealed, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, msg) {
				t.Fatal("plaintext differs")
			}
			if err := reg.Verify(bytes.NewReader(sealed)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecipientRequired(t *testing.T) {
	f := newFixture(t)
	alice, eve := identity(t, "alice"), identity(t, "eve")
	sealed, _ := f.seal(t, []byte("secret"), time.Second, alice.Card())
	f.clk.Add(5 * time.Second)
	for _, id := range []*party.Identity{nil, eve} {
		if _, err := f.open(sealed, id); !errors.Is(err, ErrNotRecipient) {
			t.Fatalf("open as %v: %v", id, err)
		}
	}
	// A non-recipient who relabels a wrapped key with its own fingerprint
	// gets ErrTampered, not plaintext.
	forged := bytes.Clone(sealed)
	e, err := parseEnvelope(forged[:bytes.Index(forged, []byte(datasetMagic))])
	if err != nil {
		t.Fatal(err)
	}
	off := len(e.raw) - len(e.recipients[0].ct) - 2 - 32
	copy(forged[off:], mustHex(eve.Card().Fingerprint))
	if _, err := f.open(forged, eve); !errors.Is(err, ErrTampered) {
		t.Fatalf("relabelled: %v", err)
	}
}

const datasetMagic = "\x89KURADS\n"

func TestTampered(t *testing.T) {
	f := newFixture(t)
	alice := identity(t, "alice")
	msg := bytes.Repeat([]byte{7}, 3<<20)
	for _, to := range [][]*party.Card{nil, {alice.Card()}} {
		sealed, _ := f.seal(t, msg, time.Second, to...)
		f.clk.Add(2 * time.Second)
		cases := map[string][]byte{
			"payload bit":  flip(sealed, len(sealed)-100),
			"middle bit":   flip(sealed, len(sealed)/2),
			"truncated":    sealed[:len(sealed)-1],
			"cut at chunk": sealed[:len(sealed)-(1<<20)],
			"appended":     append(bytes.Clone(sealed), 0),
		}
		for name, b := range cases {
			if _, err := f.open(b, alice); !errors.Is(err, ErrTampered) {
				t.Errorf("%d recipients, %s: %v", len(to), name, err)
			}
		}
		// Every header byte: never plaintext, never a panic.
		hl := 400
		if len(to) > 0 {
			in, _ := Inspect(bytes.NewReader(sealed))
			hl = in.HeaderSize + 120
		}
		for i := 0; i < hl; i++ {
			if out, err := f.open(flip(sealed, i), alice); err == nil {
				t.Fatalf("%d recipients: flipped byte %d opened (%d bytes)", len(to), i, len(out))
			}
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func TestWrongChain(t *testing.T) {
	a, b := newFixture(t), newFixture(t)
	sealed, _ := a.seal(t, []byte("x"), time.Second)
	a.clk.Add(2 * time.Second)
	b.clk.Add(2 * time.Second)
	if _, err := b.open(sealed, nil); !errors.Is(err, ErrWrongChain) || !strings.Contains(err.Error(), a.chain.Hash) {
		t.Fatalf("open on chain B: %v", err)
	}
	// Chain A's hash asked of a server that does not serve it.
	for _, url := range []string{b.url, lyingServer(t, b)} {
		lying := Chain{Hash: a.chain.Hash, URLs: []string{url}}
		_, err := Seal(context.Background(), io.Discard, strings.NewReader("x"), SealOptions{Until: a.clk.Now().Add(time.Minute), Chain: lying, AllowInsecure: true, Now: a.clk.Now})
		if !errors.Is(err, ErrWrongChain) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), a.chain.Hash) {
			t.Fatalf("URL %s: %v", url, err)
		}
	}
}

// lyingServer serves b's chain info under any chain hash.
func lyingServer(t *testing.T, b *fixture) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(b.beacon.InfoJSON()) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestUnavailable(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	f := newFixture(t)
	c := Chain{Hash: f.chain.Hash, URLs: []string{url}}
	_, err := Seal(context.Background(), io.Discard, strings.NewReader("x"), SealOptions{Until: time.Now().Add(time.Minute), Chain: c, AllowInsecure: true})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), f.chain.Hash) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestInsecureRefused(t *testing.T) {
	f := newFixture(t)
	_, err := Seal(context.Background(), io.Discard, strings.NewReader("x"), SealOptions{Until: f.clk.Now().Add(time.Minute), Chain: f.chain, Now: f.clk.Now})
	if !errors.Is(err, ErrInsecureBeacon) {
		t.Fatalf("seal to dev beacon without AllowInsecure: %v", err)
	}
	sealed, _ := f.seal(t, []byte("x"), time.Second)
	f.clk.Add(2 * time.Second)
	_, err = Open(context.Background(), io.Discard, bytes.NewReader(sealed), OpenOptions{Chain: f.chain, Now: f.clk.Now})
	if !errors.Is(err, ErrInsecureBeacon) {
		t.Fatalf("open from dev beacon without AllowInsecure: %v", err)
	}
}

func TestBadTimes(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	q := Quicknet()
	for name, until := range map[string]time.Time{
		"zero":       {},
		"past":       now.Add(-time.Second),
		"now":        now,
		"101 years":  now.AddDate(101, 0, 0),
		"year 3e11":  time.Unix(1<<62, 0),
		"max time":   time.Unix(1<<63-1, 999999999),
		"before 0AD": time.Unix(-1<<62, 0),
	} {
		_, err := Seal(context.Background(), io.Discard, strings.NewReader("x"), SealOptions{Until: until, Chain: q, Now: func() time.Time { return now }})
		if !errors.Is(err, ErrBadTime) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The round arithmetic itself refuses what would wrap.
	if _, err := q.Info.RoundAt(time.Unix(1<<62, 0)); !errors.Is(err, ErrBadTime) {
		t.Errorf("RoundAt(2^62 s): %v", err)
	}
	for _, r := range []uint64{0, 1 << 62, 1<<64 - 1} {
		if _, err := q.Info.TimeOf(r); !errors.Is(err, ErrBadTime) {
			t.Errorf("TimeOf(%d): %v", r, err)
		}
	}
	// 99 years is fine, offline, on the pinned quicknet info, and rounds
	// up to a round boundary.
	until := now.AddDate(99, 0, 0).Add(time.Second)
	reg, err := Seal(context.Background(), io.Discard, strings.NewReader("x"), SealOptions{Until: until, Chain: q, Now: func() time.Time { return now }, Network: failNet{}})
	if err != nil {
		t.Fatal(err)
	}
	if reg.ReleaseTime.Before(until) || reg.ReleaseTime.Sub(until) >= 3*time.Second {
		t.Fatalf("release %s for until %s", reg.ReleaseTime, until)
	}
}

// failNet fails every call: proves a code path needs no network.
type failNet struct{}

func (failNet) Info(context.Context) ([]byte, error) {
	return nil, errors.New("no network in this test")
}
func (failNet) Beacon(context.Context, uint64) (*Beacon, error) {
	return nil, errors.New("no network in this test")
}

func TestRoundOverflowInHeader(t *testing.T) {
	f := newFixture(t)
	alice := identity(t, "alice")
	sealed, _ := f.seal(t, []byte("x"), time.Second, alice.Card())
	b := bytes.Clone(sealed)
	copy(b[prefixLen+32:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if _, err := f.open(b, alice); !errors.Is(err, ErrTampered) || !errors.Is(err, ErrBadTime) {
		t.Fatalf("round 2^64-1: %v", err)
	}
}

func TestForgedBeacon(t *testing.T) {
	f := newFixture(t)
	sealed, _ := f.seal(t, []byte("x"), time.Second)
	f.clk.Add(2 * time.Second)
	other, _ := beacon.New(beacon.Config{Genesis: f.beacon.Genesis(), Now: f.clk.Now})
	_, err := Open(context.Background(), io.Discard, bytes.NewReader(sealed), OpenOptions{Chain: f.chain, AllowInsecure: true, Now: f.clk.Now, Network: forgingNet{f, other}})
	if !errors.Is(err, ErrBadBeacon) {
		t.Fatalf("forged beacon: %v", err)
	}
}

type forgingNet struct {
	f     *fixture
	other *beacon.Beacon
}

func (n forgingNet) Info(context.Context) ([]byte, error) { return n.f.beacon.InfoJSON(), nil }
func (n forgingNet) Beacon(_ context.Context, r uint64) (*Beacon, error) {
	sig, err := n.other.Sign(r)
	return &Beacon{Round: r, Signature: sig}, err
}

// Interop with drand's own tlock library and its HTTP network client, for
// a short file and one of many age chunks and digest buffers: kura's file
// opens with tlock and its registration matches the bytes written; tlock's
// file opens with kura, not before its round.
func TestTlockInterop(t *testing.T) {
	large := make([]byte, 5*digestBufSize+321)
	for i := range large {
		large[i] = byte(i * 7)
	}
	for name, msg := range map[string][]byte{"short": []byte("opens with drand's tools"), "many chunks": large} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			sealed, reg := f.seal(t, msg, time.Second)
			if sum := sha256.Sum256(sealed); reg.SealedSHA256 != hex.EncodeToString(sum[:]) || reg.SealedSize != int64(len(sealed)) {
				t.Fatalf("registration %s (%d bytes), sealed file %x (%d bytes)", reg.SealedSHA256, reg.SealedSize, sum, len(sealed))
			}
			f.clk.Add(2 * time.Second)
			net, err := tlockhttp.NewNetwork(f.url, f.chain.Hash)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := tlock.New(net).Strict().Decrypt(&out, bytes.NewReader(sealed)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), msg) {
				t.Fatal("tlock decrypted something else")
			}
			// And the other way round: tlock encrypts, kura opens.
			var enc bytes.Buffer
			if err := tlock.New(net).Encrypt(&enc, bytes.NewReader(msg), reg.Round+10); err != nil {
				t.Fatal(err)
			}
			if _, err := f.open(enc.Bytes(), nil); !errors.Is(err, ErrTooEarly) {
				t.Fatalf("round not yet out: %v", err)
			}
			f.clk.Add(10 * time.Second)
			got, err := f.open(enc.Bytes(), nil)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("kura open of tlock file: %v", err)
			}
		})
	}
}

func TestRegistrationVerify(t *testing.T) {
	f := newFixture(t)
	alice := identity(t, "alice")
	sealed, reg := f.seal(t, []byte("x"), time.Minute, alice.Card())
	data, err := reg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	reg2, err := ParseRegistration(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg2.Verify(bytes.NewReader(sealed)); err != nil {
		t.Fatal(err)
	}
	if err := reg2.Verify(bytes.NewReader(flip(sealed, len(sealed)-1))); !errors.Is(err, ErrTampered) {
		t.Fatalf("modified file: %v", err)
	}
	bad := *reg2
	bad.Round++
	if err := bad.Verify(bytes.NewReader(sealed)); !errors.Is(err, ErrTampered) {
		t.Fatalf("wrong round: %v", err)
	}
	bad = *reg2
	bad.ReleaseTime = bad.ReleaseTime.Add(time.Hour)
	if err := bad.Verify(bytes.NewReader(sealed)); !errors.Is(err, ErrTampered) {
		t.Fatalf("wrong release time: %v", err)
	}
	for _, s := range []string{`{}`, `{"version":1,"extra":1}`, string(data) + "{}", strings.Repeat(" ", MaxRegistrationSize+1)} {
		if _, err := ParseRegistration([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseRegistration(%.20q): %v", s, err)
		}
	}
}

func TestInspectRejects(t *testing.T) {
	big := append([]byte(Magic), 0, 1, 0xff, 0xff, 0xff, 0xff)
	for name, in := range map[string][]byte{
		"empty":         nil,
		"junk":          []byte("hello world, not sealed"),
		"short magic":   []byte(Magic[:5]),
		"huge header":   big,
		"age no tlock":  []byte("age-encryption.org/v1\n-> X25519 abc\nAAAA\n--- mac\n"),
		"age two tlock": []byte("age-encryption.org/v1\n-> tlock 1 " + QuicknetHash + "\nAAAA\n-> tlock 2 " + QuicknetHash + "\nAAAA\n--- x\n"),
		"age bad round": []byte("age-encryption.org/v1\n-> tlock 01 " + QuicknetHash + "\nAAAA\n--- x\n"),
		"age long line": append([]byte("age-encryption.org/v1\n-> tlock 1 "), bytes.Repeat([]byte("a"), 70000)...),
	} {
		if _, err := Inspect(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustHex(s string) []byte {
	b := make([]byte, len(s)/2)
	for i := range b {
		b[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return b
}

func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}
