// Package demo is kura's story on one machine, with no network and no TEE
// hardware: an attestation round trip with the INSECURE simulated TEE, a
// sealed dataset released by a key broker only to an attested workload, a
// clean room between two owners whose approved run goes through a run queue
// and a serving worker, the same question answered by the owners' own agents
// on the cryptographic backend with a privacy budget, a time-locked document, and real SEV-SNP and TDX
// evidence verified offline. Run runs it for `kura demo`; the story's
// local servers (StartServer) and clean room (NewCleanRoom) also serve the
// command line's tests and `kura bench cleanroom`.
//
// Security model: none. Everything here is dev mode and loopback only: the
// simulated TEE proves nothing, and the servers accept it.
package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/sim"
	"github.com/kura-cc/kura/attestation/snp"
	"github.com/kura-cc/kura/attestation/tdx"
	"github.com/kura-cc/kura/dataset"
	"github.com/kura-cc/kura/internal/captures"
	"github.com/kura-cc/kura/keybroker"
	"github.com/kura-cc/kura/result"
	"github.com/kura-cc/kura/server"
	"github.com/kura-cc/kura/timelock"
	"github.com/kura-cc/kura/token"
	"github.com/kura-cc/kura/verifier"
)

// Config is what the demo takes from the command line that runs it: kura's
// version, where the services log, and the kura commands the story's people
// type, which the command line implements.
type Config struct {
	// Version is kura's version, named in the local servers' tokens.
	Version string
	// Logger receives the local services' logs; nil discards them, as the
	// demo narrates on its own output.
	Logger *slog.Logger
	// SealData is `kura data seal IN --schema SCHEMA -o SEALED --key-file
	// KEYFILE --dataset-id ID`, writing only its report to out.
	SealData func(ctx context.Context, in, schema, sealed, keyFile, datasetID string, out io.Writer) error
	// PublishRun records a run's result bundle and receipt in the
	// transparency log at baseURL and embeds the inclusion proofs it
	// returns (`kura worker run --log`).
	PublishRun func(ctx context.Context, hc *http.Client, baseURL string, bundle, receipt *result.File) error
	// FetchKept fetches the result bundle or receipt (kind "results" or
	// "receipts") that the log at baseURL kept, by the SHA-256 of its
	// payload, and checks that it is that file, signed by the key of run
	// runID (`kura result fetch`).
	FetchKept func(ctx context.Context, hc *http.Client, baseURL, kind, digest, runID string) (*result.File, error)
	// PrintResult prints a decrypted analysis output as a table (`kura
	// result open`).
	PrintResult func(w io.Writer, plain []byte) error
	// VerifyRegistration checks, offline, that a time-lock registration is
	// in the transparency log whose verifier key is logKey, and says when
	// the log recorded it (`kura timelock verify --proof`).
	VerifyRegistration func(proofPath, logKey string, reg *timelock.Registration) (string, error)
}

type demo struct {
	cfg  Config
	out  io.Writer
	step int
}

func (d *demo) section(title string) { fmt.Fprintf(d.out, "\n== %s\n", title) }

func (d *demo) say(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "%2d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) detail(format string, args ...any) {
	fmt.Fprintf(d.out, "      %s\n", fmt.Sprintf(format, args...))
}

// Run runs the demo and narrates it on out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &demo{cfg: cfg, out: out}
	fmt.Fprintln(out, "kura demo: attestation, sealed data, key release, a clean room, secret computation, a time lock, confidential inference. Everything runs locally; nothing leaves this machine.")
	dir, err := os.MkdirTemp("", "kura-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := d.simRoundTrip(ctx, dir, log); err != nil {
		return err
	}
	sealed, keyFile, err := d.sealDataset(ctx, dir)
	if err != nil {
		return err
	}
	if err := d.keyBroker(ctx, log, dir, sealed, keyFile); err != nil {
		return err
	}
	if err := d.cleanRoom(ctx, dir, log); err != nil {
		return err
	}
	if err := d.timeLock(ctx, dir, log); err != nil {
		return err
	}
	if err := d.confidentialInference(ctx, dir, log); err != nil {
		return err
	}
	return d.realEvidence(ctx)
}

// simRoundTrip runs a dev-mode verifier over HTTP and attests to it from
// the simulated TEE.
func (d *demo) simRoundTrip(ctx context.Context, dir string, log *slog.Logger) error {
	d.section("Attestation round trip (simulated TEE, dev mode: INSECURE)")
	cfg := devConfig(filepath.Join(dir, "verifier"), d.cfg.Version, log)
	cfg.Roles = []server.Role{server.RoleVerifier}
	srv, err := serveLocal(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Stop()
	base := srv.URL
	d.say("verifier listening on %s (dev mode: the INSECURE sim TEE is accepted)", base)

	client := &verifier.Client{BaseURL: base}
	workload, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		return err
	}
	m, err := workload.Measurement()
	if err != nil {
		return err
	}
	d.say("workload starts in the sim TEE; its measurement is SHA-384 of this binary: %x…", m[:12])
	teeKey := []byte(`{"kty":"OKP","crv":"X25519","x":"demo-ephemeral-key-never-leaves-the-tee"}`)
	n, err := client.Nonce(ctx)
	if err != nil {
		return err
	}
	d.say("workload asks for a nonce: %x… (single use, expires %s)", n.Nonce[:8], n.ExpiresAt.Format(time.TimeOnly))
	rd := attestation.RuntimeData{Nonce: n.Nonce, PublicKey: teeKey, Context: []byte("demo")}
	b, err := workload.Attest(ctx, rd.ReportData())
	if err != nil {
		return err
	}
	b.RuntimeData = rd
	rdv := rd.ReportData()
	d.say("workload binds nonce + public key into report_data = SHA-512(nonce ‖ H(runtime data)) = %x…", rdv[:8])
	resp, err := client.Verify(ctx, b)
	if err != nil {
		return err
	}
	d.say("verifier checks the evidence and signs an EAR token: status %s%s", resp.Status, insecureMark(resp.Insecure))
	for _, c := range resp.Report.Checks {
		d.detail("%-7s %-20s %s", c.Status, c.Name, c.Detail)
	}

	jwks, err := client.JWKS(ctx)
	if err != nil {
		return err
	}
	keys, err := token.ParseJWKS(jwks)
	if err != nil {
		return err
	}
	tv, err := token.NewVerifier(token.VerifierConfig{Keys: keys})
	if err != nil {
		return err
	}
	claims, err := tv.Verify(ctx, []byte(resp.Token))
	if err != nil {
		return fmt.Errorf("relying party: %w", err)
	}
	d.say("relying party fetches /.well-known/jwks.json and verifies the token: signature ok, expires %s,", claims.Expiry.Format(time.TimeOnly))
	d.detail("bound public key %q", claims.RuntimePublicKey)
	if _, err := client.Verify(ctx, b); errors.Is(err, attestation.ErrNonce) {
		d.say("the same evidence sent again is refused: %v", err)
	} else {
		return fmt.Errorf("replayed evidence was not refused: %v", err)
	}

	svc, err := server.Verification{}.Service(ctx, log, nil, nil)
	if err != nil {
		return err
	}
	rd2 := attestation.RuntimeData{}
	b2, err := workload.Attest(ctx, rd2.ReportData())
	if err != nil {
		return err
	}
	rep, err := svc.Verify(ctx, b2, verifier.Options{Freshness: verifier.NoFreshness})
	if err != nil {
		return err
	}
	d.say("a verifier outside dev mode appraises the same sim evidence as %s: %s", rep.Appraisal.Status, rep.Appraisal.Explain["hardware"])
	return nil
}

func insecureMark(insecure bool) string {
	if insecure {
		return " (INSECURE: simulated TEE, never affirming)"
	}
	return ""
}

// vector is one piece of real captured evidence and the time its
// certificates and collateral were valid.
type vector struct {
	name string
	at   string
	load func() (*attestation.Bundle, error)
}

var vectors = []vector{
	{"AMD SEV-SNP, Milan (go-sev-guest test vector)", "2023-06-01T00:00:00Z", func() (*attestation.Bundle, error) {
		report, vcek, chain := captures.SNPMilan()
		return snp.NewBundle(report, append(vcek, chain...))
	}},
	{"AMD SEV-SNP, Genoa (configfs-tsm capture)", "2025-06-01T00:00:00Z", func() (*attestation.Bundle, error) {
		return snp.ParseTSMReport(captures.SNPGenoaTSM())
	}},
	{"Intel TDX, Sapphire Rapids (v4 quote + Intel PCS collateral)", "2023-07-01T01:00:00Z", func() (*attestation.Bundle, error) {
		dir, err := os.MkdirTemp("", "kura-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := captures.WriteTDX(dir, "spr_e4"); err != nil {
			return nil, err
		}
		col, err := tdx.LoadCollateralDir(dir)
		if err != nil {
			return nil, err
		}
		quote, err := os.ReadFile(filepath.Join(dir, "quote.dat"))
		if err != nil {
			return nil, err
		}
		return tdx.NewBundle(quote, col)
	}},
}

// realEvidence verifies the embedded hardware vectors offline, then a
// tampered copy of each.
func (d *demo) realEvidence(ctx context.Context) error {
	d.section("Real hardware evidence, verified offline against the vendors' roots")
	quiet := slog.New(slog.DiscardHandler)
	for _, v := range vectors {
		b, err := v.load()
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		at, err := time.Parse(time.RFC3339, v.at)
		if err != nil {
			return err
		}
		svc, err := server.Verification{Now: func() time.Time { return at }}.Service(ctx, quiet, nil, nil)
		if err != nil {
			return err
		}
		rep, err := svc.Verify(ctx, b, verifier.Options{Freshness: verifier.NoFreshness})
		passed := 0
		for _, c := range rep.Checks {
			if c.Status == attestation.Passed {
				passed++
			}
		}
		d.say("%s, as of %s", v.name, v.at[:10])
		switch {
		case err != nil && rep.Claims == nil:
			d.detail("%d checks passed, then refused: %v", passed, err)
		case err != nil:
			d.detail("measurement %.32s…: %d checks passed, then refused: %v", rep.Claims["measurement"], passed, err)
		default:
			d.detail("measurement %.32s…: %d checks passed, status %s", rep.Claims["measurement"], passed, rep.Appraisal.Status)
			if s, ok := rep.Claims["tcb_status"].(string); ok && s != "" {
				d.detail("Intel TCB status: %s", s)
			}
			for _, c := range rep.Checks {
				if c.Status == attestation.Failed {
					d.detail("policy check failed: %s: %s", c.Name, c.Detail)
				}
			}
		}

		tampered := *b
		tampered.Evidence = bytes.Clone(b.Evidence)
		tampered.Evidence[measurementOffset(b.TEE)] ^= 0x01
		_, err = svc.Verify(ctx, &tampered, verifier.Options{Freshness: verifier.NoFreshness})
		if err == nil {
			return fmt.Errorf("%s: tampered evidence was accepted", v.name)
		}
		d.detail("one bit of the measurement flipped: refused (%v)", err)
	}
	fmt.Fprintln(d.out, "\nNext: `kura attest verify --help`, `kura verifier serve --dev`, and docs/spec/attestation.md.")
	return nil
}

// measurementOffset is where the launch measurement sits in raw evidence:
// SNP report offset 0x90; TDX v4 quote header (48) + MRTD offset in the body (136).
func measurementOffset(tee attestation.TEE) int {
	if tee == attestation.SNP {
		return 0x90
	}
	return 48 + 136
}

// keyBroker runs a key broker with a built-in dev-mode verifier on
// loopback: an owner stores a secret, a sim workload attests and fetches it,
// and a policy that wants another measurement refuses.
func (d *demo) keyBroker(ctx context.Context, log *slog.Logger, dir, sealed, keyFile string) error {
	d.section("Key broker: the dataset key released only to an attested workload (KBS protocol)")
	srv, err := StartServer(ctx, filepath.Join(dir, "kbs"), "airline", d.cfg.Version, log)
	if err != nil {
		return err
	}
	defer srv.Stop()
	base := srv.URL
	d.say("key broker on %s: secrets sealed under a KEK in SQLite, owner API signed with Ed25519", base)

	owner := srv.Admin
	key, err := dataset.ReadKeyFile(keyFile)
	if err != nil {
		return err
	}
	value := key.Bytes()
	v, err := owner.Put(ctx, "airline/key/passengers", value, map[string]string{"dataset": "passengers-2026"}, "")
	if err != nil {
		return err
	}
	d.say("the airline stores the data key as airline/key/passengers (version %d); the broker keeps only ciphertext", v)

	workload, err := sim.NewAttester(sim.AttesterConfig{})
	if err != nil {
		return err
	}
	s, err := (&keybroker.Client{BaseURL: base}).Attest(ctx, workload, []byte("demo run"))
	if err != nil {
		return err
	}
	d.say("a workload in the sim TEE runs the KBS handshake (auth, attest) with a fresh ephemeral key: EAR token received")
	got, err := s.Resource(ctx, "airline/key/passengers")
	if err != nil {
		return err
	}
	if !bytes.Equal(got, value) {
		return errors.New("the released key is not the one the owner put")
	}
	fetched, err := dataset.KeyFromBytes(got)
	if err != nil {
		return err
	}
	h, err := dataset.OpenFile(ctx, filepath.Join(dir, "opened.parquet"), sealed, fetched, dataset.Options{})
	if err != nil {
		return err
	}
	d.say("it fetches the key as a JWE only its ephemeral key opens, and opens the sealed dataset: %d bytes of %s, every chunk authenticated", h.Size, h.Format)

	if _, err := owner.SetPolicy(ctx, "repo/airline", `package kura.release
default allow := false
allow if input.token.claims.measurement == "`+strings.Repeat("00", 48)+`"
deny contains "this workload's measurement is not the one the airline approved" if not allow`); err != nil {
		return err
	}
	_, err = s.Resource(ctx, "airline/key/passengers")
	if !errors.Is(err, keybroker.ErrDenied) {
		return fmt.Errorf("release was not refused by the new policy: %v", err)
	}
	d.say("the airline narrows its release policy to another measurement; the same request is refused: %v", err)
	audit, err := owner.Audit(ctx, 0, 10)
	if err != nil {
		return err
	}
	d.say("the broker's audit trail holds %d decisions with reasons, e.g. %s: %.60s", len(audit), audit[len(audit)-1].Decision, audit[len(audit)-1].Reason)
	return nil
}

// sealDataset seals a small passenger list the way an owner would, and
// shows a tampered copy refused.
func (d *demo) sealDataset(ctx context.Context, dir string) (sealed, keyFile string, err error) {
	d.section("Sealed dataset: encrypted on the owner's machine before it goes anywhere")
	csv := filepath.Join(dir, "passengers.csv")
	schema := filepath.Join(dir, "passengers.yaml")
	if err := os.WriteFile(csv, []byte("email,age_band,home_prefecture\n Aiko@Example.jp ,30-39,Tokyo\nken@example.jp,40-49,Osaka\nYUKI@example.jp,20-29,Tokyo\n"), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(schema, []byte(`columns:
  - {name: email, type: string, identity: true, join: true, normalize: [trim, lower]}
  - {name: age_band, type: string}
  - {name: home_prefecture, type: string}
`), 0o600); err != nil {
		return "", "", err
	}
	sealed = filepath.Join(dir, "passengers.kura")
	keyFile = sealed + ".key"
	var out bytes.Buffer
	if err := d.cfg.SealData(ctx, csv, schema, sealed, keyFile, "passengers-2026", &out); err != nil {
		return "", "", err
	}
	d.say("the airline validates its CSV against a schema (e-mail is an identity, trimmed and lower-cased), converts it to Parquet with DuckDB and seals it")
	d.detail("%s", strings.ReplaceAll(strings.TrimSpace(out.String()), "\n", "; "))
	data, err := os.ReadFile(sealed)
	if err != nil {
		return "", "", err
	}
	key, err := dataset.ReadKeyFile(keyFile)
	if err != nil {
		return "", "", err
	}
	data[len(data)-20] ^= 1
	tampered := filepath.Join(dir, "tampered.kura")
	if err := os.WriteFile(tampered, data, 0o600); err != nil {
		return "", "", err
	}
	_, err = dataset.OpenFile(ctx, filepath.Join(dir, "tampered.parquet"), tampered, key, dataset.Options{})
	if err == nil {
		return "", "", errors.New("tampered dataset opened")
	}
	if _, statErr := os.Stat(filepath.Join(dir, "tampered.parquet")); !errors.Is(statErr, os.ErrNotExist) {
		return "", "", errors.New("opening a tampered dataset left an output file")
	}
	d.say("one flipped bit in the sealed file is refused, and no output file is left: %v", err)
	return sealed, keyFile, nil
}
