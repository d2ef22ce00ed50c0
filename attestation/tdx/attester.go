package tdx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"
	"github.com/google/go-tdx-guest/client"

	"github.com/kura-cc/kura/attestation"
)

// tdxGuestDevice is the Linux TDX guest device of the ioctl interface.
const tdxGuestDevice = "/dev/tdx_guest"

// tsmProvider is the configfs-tsm provider name of the TDX guest driver.
const tsmProvider = "tdx_guest"

// AttesterConfig configures an Attester. When both TSM and OpenDevice are
// nil, NewAttester looks for configfs-tsm (/sys/kernel/config/tsm/report)
// and then for /dev/tdx_guest; when either is set, only what is set is used.
type AttesterConfig struct {
	// TSM is the configfs-tsm client quotes are requested from first.
	TSM configfsi.Client
	// OpenDevice opens a TDX guest device for the ioctl interface, used
	// when TSM is nil. The Attester closes the device after each quote.
	OpenDevice func() (client.Device, error)
	// Logger receives a record per quote. Nil discards.
	Logger *slog.Logger
}

// Attester produces TDX quotes inside a TD. It is safe for concurrent use
// as far as the kernel interfaces are.
type Attester struct {
	tsm        configfsi.Client
	openDevice func() (client.Device, error)
	log        *slog.Logger
}

var _ attestation.Attester = (*Attester)(nil)

// NewAttester returns an Attester for cfg. It returns an error wrapping
// attestation.ErrNoTEE when neither configfs-tsm nor the TDX guest device
// is available.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	a := &Attester{tsm: cfg.TSM, openDevice: cfg.OpenDevice, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.tsm == nil && a.openDevice == nil {
		if tsm, err := linuxtsm.MakeClient(); err == nil {
			a.tsm = tsm
		} else if _, err := os.Stat(tdxGuestDevice); err == nil {
			a.openDevice = func() (client.Device, error) { return client.OpenDevice() }
		}
	}
	if a.tsm == nil && a.openDevice == nil {
		return nil, fmt.Errorf("%w: neither configfs-tsm (/sys/kernel/config/tsm/report) nor %s exists; run inside an Intel TDX guest with a Linux 6.7+ kernel or the tdx_guest driver", attestation.ErrNoTEE, tdxGuestDevice)
	}
	return a, nil
}

// TEE returns attestation.TDX.
func (a *Attester) TEE() attestation.TEE { return attestation.TDX }

// Attest returns a bundle whose evidence is a TDX quote over reportData.
// The quote is checked to parse and to carry reportData; it is not
// verified.
func (a *Attester) Attest(ctx context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		raw []byte
		via string
		err error
	)
	if a.tsm != nil {
		via = "configfs-tsm"
		raw, err = a.quoteTSM(reportData)
	} else {
		via = tdxGuestDevice
		raw, err = a.quoteDevice(reportData)
	}
	if err != nil {
		return nil, fmt.Errorf("tdx attester: %s: %w", via, err)
	}
	q, err := parseQuote(raw)
	if err != nil {
		return nil, fmt.Errorf("tdx attester: %s returned a bad quote: %w", via, err)
	}
	if !bytes.Equal(q.body.reportData, reportData[:]) {
		return nil, fmt.Errorf("tdx attester: %s returned a quote for other report data", via)
	}
	a.log.InfoContext(ctx, "tdx quote generated", "via", via, "quote_version", q.version, "bytes", len(raw))
	return &attestation.Bundle{Version: attestation.BundleVersion, TEE: attestation.TDX, Evidence: raw}, nil
}

func (a *Attester) quoteTSM(reportData [attestation.ReportDataSize]byte) ([]byte, error) {
	resp, err := report.Get(a.tsm, &report.Request{InBlob: reportData[:]})
	if err != nil {
		return nil, err
	}
	if p := strings.TrimSpace(resp.Provider); p != tsmProvider {
		return nil, fmt.Errorf("%w: configfs-tsm provider is %q, not %q", attestation.ErrNoTEE, p, tsmProvider)
	}
	return resp.OutBlob, nil
}

func (a *Attester) quoteDevice(reportData [attestation.ReportDataSize]byte) (raw []byte, err error) {
	d, err := a.openDevice()
	if err != nil {
		return nil, fmt.Errorf("%w: opening the TDX guest device: %v", attestation.ErrNoTEE, err)
	}
	defer func() { err = errors.Join(err, d.Close()) }()
	return client.GetRawQuote(d, reportData)
}
