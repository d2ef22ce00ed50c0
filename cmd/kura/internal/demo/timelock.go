package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/auditlog/intake"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/timelock"
	"github.com/kura-cc/kura/timelock/beacon"
)

// timeLock runs the time-lock episode: a document sealed to a round two
// seconds ahead on a local (INSECURE) beacon, for one recipient; an early
// open refused; the registration logged; the open after the time.
func (d *demo) timeLock(ctx context.Context, dir string, log *slog.Logger) error {
	d.section("Time-release vault: a document nobody can open before its time (dev beacon: INSECURE)")
	b, err := beacon.New(beacon.Config{Period: time.Second, Logger: log})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Serve(bctx, l) }()
	defer func() { stop(); <-done }()
	chain := timelock.Chain{Hash: b.ChainHash(), URLs: []string{"http://" + l.Addr().String()}}
	d.say("a local beacon signs a round every second with one BLS key (quicknet's scheme) — INSECURE: its owner can open anything; drand's League of Entropy splits that key")

	regulator, err := party.Generate("regulator", party.KEMX25519)
	if err != nil {
		return err
	}
	doc := []byte("Q3 results: revenue up 12%. Embargoed until the release time.\n")
	var sealed bytes.Buffer
	reg, err := timelock.Seal(ctx, &sealed, bytes.NewReader(doc), timelock.SealOptions{
		Until: time.Now().Add(2 * time.Second), Chain: chain, Recipients: []*party.Card{regulator.Card()}, AllowInsecure: true, Logger: log,
	})
	if err != nil {
		return err
	}
	d.say("an issuer seals its earnings release to round %d (%s) for the regulator only: %d bytes", reg.Round, reg.ReleaseTime.Format("15:04:05"), sealed.Len())

	srv, err := StartServer(ctx, filepath.Join(dir, "timelock-server"), "issuer", d.cfg.Version, log)
	if err != nil {
		return err
	}
	defer srv.Stop()
	regJSON, err := reg.Marshal()
	if err != nil {
		return err
	}
	proofJSON, err := (&intake.Client{BaseURL: srv.URL}).Submit(ctx, auditlog.KindTimelockRegistration, regJSON)
	if err != nil {
		return err
	}
	regPath, proofPath := filepath.Join(dir, "release.registration.json"), filepath.Join(dir, "release.registration.proof.json")
	if err := errors.Join(os.WriteFile(regPath, regJSON, 0o644), os.WriteFile(proofPath, proofJSON, 0o644)); err != nil {
		return err
	}
	logged, err := d.cfg.VerifyRegistration(proofPath, filepath.Join(dir, "timelock-server", "log-key.pub"), reg)
	if err != nil {
		return err
	}
	d.say("its registration (file hash, round, release time) goes into a transparency log: %s", logged)

	open := func(id *party.Identity) ([]byte, error) {
		var out bytes.Buffer
		_, err := timelock.Open(ctx, &out, bytes.NewReader(sealed.Bytes()), timelock.OpenOptions{Identity: id, Chain: chain, AllowInsecure: true, Logger: log})
		return out.Bytes(), err
	}
	var early *timelock.TooEarlyError
	if _, err := open(regulator); !errors.As(err, &early) {
		return fmt.Errorf("an early open was not refused: %v", err)
	}
	d.say("the regulator tries at once: refused, %s remain (the round's signature does not exist yet)", early.Remaining().Round(100*time.Millisecond))
	select {
	case <-time.After(time.Until(early.ReleaseTime) + 300*time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	outsider, err := party.Generate("journalist", party.KEMX25519)
	if err != nil {
		return err
	}
	if _, err := open(outsider); !errors.Is(err, timelock.ErrNotRecipient) {
		return fmt.Errorf("a non-recipient was not refused: %v", err)
	}
	got, err := open(regulator)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, doc) {
		return errors.New("the opened document differs from the sealed one")
	}
	d.say("after the release time a journalist (not a recipient) is still refused; the regulator opens it: %q", strings.TrimSpace(string(got)))
	return nil
}
