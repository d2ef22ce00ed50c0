package snp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/client"

	"github.com/kura-cc/kura/attestation"
)

// Guest interfaces the Attester looks for.
const (
	tsmReportDir   = configfsi.TsmPrefix + "/report"
	sevGuestDevice = "/dev/sev-guest"
	tsmProviderSNP = "sev_guest"
)

// AttesterConfig configures an Attester. With both interfaces nil, the
// Attester uses the machine's: configfs-tsm when its report provider is
// sev_guest, else /dev/sev-guest.
type AttesterConfig struct {
	// TSM is the configfs-tsm client to ask first; tests pass
	// go-configfs-tsm's faketsm.
	TSM configfsi.Client
	// Device is an open sev-guest device to ask when TSM is nil or fails;
	// tests pass go-sev-guest's testing.Device. The Attester does not
	// close it.
	Device client.Device
	// Logger receives a record per report. Nil discards.
	Logger *slog.Logger
}

// Attester produces SEV-SNP reports inside an SNP guest. It implements
// attestation.Attester and is safe for concurrent use.
type Attester struct {
	tsm     configfsi.Client
	dev     client.Device
	openDev bool // open /dev/sev-guest for each report
	log     *slog.Logger
	mu      sync.Mutex // serialises device requests
}

// NewAttester returns an Attester for the configured or detected guest
// interface. Outside an SNP guest it returns an error wrapping
// attestation.ErrNoTEE.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	a := &Attester{tsm: cfg.TSM, dev: cfg.Device, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.tsm != nil || a.dev != nil {
		return a, nil
	}
	var probeErr error
	if c, err := linuxtsm.MakeClient(); err == nil {
		provider, err := tsmProvider(c)
		switch {
		case err != nil:
			probeErr = err
		case provider == tsmProviderSNP:
			a.tsm = c
		default:
			probeErr = fmt.Errorf("configfs-tsm report provider is %q, not %q", provider, tsmProviderSNP)
		}
	}
	if _, err := os.Stat(sevGuestDevice); err == nil {
		a.openDev = true
	}
	if a.tsm == nil && !a.openDev {
		if probeErr != nil {
			return nil, fmt.Errorf("%w: no SEV-SNP guest interface: %v and %s does not exist", attestation.ErrNoTEE, probeErr, sevGuestDevice)
		}
		return nil, fmt.Errorf("%w: no SEV-SNP guest interface: neither %s nor %s exists", attestation.ErrNoTEE, tsmReportDir, sevGuestDevice)
	}
	return a, nil
}

// tsmProvider reads the provider of a fresh configfs-tsm report entry,
// which needs no report.
func tsmProvider(c configfsi.Client) (string, error) {
	r, err := report.CreateOpenReport(c)
	if err != nil {
		return "", fmt.Errorf("configfs-tsm: %v", err)
	}
	p, err := r.ReadOption("provider")
	err = errors.Join(err, r.Destroy())
	if err != nil {
		return "", fmt.Errorf("configfs-tsm: %v", err)
	}
	return strings.TrimSpace(string(p)), nil
}

// TEE returns attestation.SNP.
func (a *Attester) TEE() attestation.TEE { return attestation.SNP }

// Attest returns a bundle whose evidence is a report binding reportData and
// whose Certs is the certificate table the host supplied (possibly empty,
// in which case verifiers fetch the VCEK). The caller fills RuntimeData.
func (a *Attester) Attest(ctx context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var errs []error
	if a.tsm != nil {
		raw, certs, err := a.attestTSM(reportData)
		if err == nil {
			return a.bundle(ctx, "configfs-tsm", raw, certs)
		}
		errs = append(errs, err)
		if a.dev != nil || a.openDev {
			a.log.WarnContext(ctx, "snp configfs-tsm report failed, trying "+sevGuestDevice, "error", err)
		}
	}
	if a.dev != nil || a.openDev {
		raw, certs, err := a.attestDevice(reportData)
		if err == nil {
			return a.bundle(ctx, sevGuestDevice, raw, certs)
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("snp attest: %w", errors.Join(errs...))
}

func (a *Attester) attestTSM(reportData [attestation.ReportDataSize]byte) ([]byte, []byte, error) {
	resp, err := report.Get(a.tsm, &report.Request{InBlob: reportData[:], GetAuxBlob: true})
	if err != nil {
		return nil, nil, fmt.Errorf("configfs-tsm: %v", err)
	}
	if p := strings.TrimSpace(resp.Provider); p != tsmProviderSNP {
		return nil, nil, fmt.Errorf("%w: configfs-tsm report provider is %q, not %q", attestation.ErrNoTEE, p, tsmProviderSNP)
	}
	return resp.OutBlob, resp.AuxBlob, nil
}

func (a *Attester) attestDevice(reportData [attestation.ReportDataSize]byte) ([]byte, []byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := a.dev
	if d == nil {
		ld, err := client.OpenDevice()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", sevGuestDevice, err)
		}
		defer ld.Close()
		d = ld
	}
	raw, certs, err := client.GetRawExtendedReportAtVmpl(d, reportData, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: extended report: %v", sevGuestDevice, err)
	}
	return raw, certs, nil
}

func (a *Attester) bundle(ctx context.Context, source string, raw, certs []byte) (*attestation.Bundle, error) {
	if len(raw) < abi.ReportSize {
		return nil, fmt.Errorf("snp attest: %s returned %d bytes, want a %d-byte report", source, len(raw), abi.ReportSize)
	}
	b := &attestation.Bundle{
		Version:  attestation.BundleVersion,
		TEE:      attestation.SNP,
		Evidence: raw[:abi.ReportSize],
	}
	if !allZero(certs) {
		b.Certs = certs
	}
	a.log.InfoContext(ctx, "snp report produced", "source", source, "certs_bytes", len(b.Certs))
	return b, nil
}

var _ attestation.Attester = (*Attester)(nil)
