package snp

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-sev-guest/abi"
	test "github.com/google/go-sev-guest/testing"

	"github.com/kura-cc/kura/attestation"
)

var attestNow = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeSevGuest returns go-sev-guest's fake sev-guest device answering
// reportData with a v3 Genoa report signed by its test-only chain.
func fakeSevGuest(t *testing.T, reportData [64]byte) *test.Device {
	t.Helper()
	d, err := test.TcDevice([]test.TestCase{{
		Input:  reportData,
		Output: test.TestRawReportV3(reportData, abi.FmsToCpuid1Eax(0x19, 0x11, 0x1)),
	}}, &test.DeviceOptions{Now: attestNow, Product: abi.DefaultSevProduct()})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fakeTSM returns go-configfs-tsm's fake configfs whose report entries
// answer like Linux's sev_guest provider, signing with dev's chain.
func fakeTSM(dev *test.Device, provider string) *faketsm.Client {
	sub := &faketsm.ReportSubsystem{
		MakeEntry: func() *faketsm.ReportEntry {
			return &faketsm.ReportEntry{InAttrs: map[string]*faketsm.ReportAttributeState{
				"inblob":    {},
				"privlevel": {Value: []byte("0\n")},
			}}
		},
		CheckInAttr: func(_ *faketsm.ReportEntry, attr string, contents []byte) error {
			if attr == "inblob" && len(contents) > 64 {
				return syscall.EINVAL
			}
			return nil
		},
		ReadAttr: func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
			switch attr {
			case "provider":
				return []byte(provider + "\n"), nil
			case "auxblob":
				return dev.Certs, nil
			case "outblob":
				var rd [64]byte
				copy(rd[:], e.InAttrs["inblob"].Value)
				report := test.TestRawReportV3(rd, abi.FmsToCpuid1Eax(0x19, 0x11, 0x1))
				raw := report[:abi.ReportSize]
				r, s, err := dev.Signer.Sign(abi.SignedComponent(raw))
				if err != nil {
					return nil, err
				}
				if err := abi.SetSignature(r, s, raw); err != nil {
					return nil, err
				}
				return raw, nil
			}
			return nil, os.ErrNotExist
		},
		Random: rand.Reader,
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

// brokenTSM fails every request.
type brokenTSM struct{ configfsi.Client }

func (brokenTSM) MkdirTemp(string, string) (string, error) {
	return "", fmt.Errorf("configfs is broken")
}

func TestAttester(t *testing.T) {
	var reportData [64]byte
	copy(reportData[:], "kura attester test nonce, sixty-four bytes long at most........")
	dev := fakeSevGuest(t, reportData)
	for _, tc := range []struct {
		name string
		cfg  AttesterConfig
	}{
		{"configfs-tsm", AttesterConfig{TSM: fakeTSM(dev, "sev_guest")}},
		{"sev-guest device", AttesterConfig{Device: dev}},
		{"configfs-tsm failing, device fallback", AttesterConfig{TSM: brokenTSM{}, Device: dev}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAttester(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if a.TEE() != attestation.SNP {
				t.Errorf("TEE() = %q", a.TEE())
			}
			b, err := a.Attest(context.Background(), reportData)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Check(); err != nil {
				t.Fatal(err)
			}
			if len(b.Evidence) != abi.ReportSize || b.TEE != attestation.SNP {
				t.Fatalf("bundle: tee %q, %d-byte evidence", b.TEE, len(b.Evidence))
			}
			report, err := abi.ReportToProto(b.Evidence)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(report.GetReportData(), reportData[:]) {
				t.Errorf("report_data %x, want %x", report.GetReportData(), reportData)
			}
			set, err := parseCerts(b.Certs)
			if err != nil {
				t.Fatal(err)
			}
			if set.cert[roleVCEK] == nil || !bytes.Equal(set.der[roleVCEK], dev.Signer.Vcek.Raw) {
				t.Errorf("certs carry no VCEK of the fake chip")
			}
			// The fake chain is not AMD's: the real verifier must refuse it.
			v := newTestVerifier(t, attestNow.Add(time.Hour), nil)
			if _, err := v.Verify(context.Background(), b); !errors.Is(err, attestation.ErrUntrustedRoot) && !errors.Is(err, attestation.ErrBadSignature) {
				t.Errorf("Verify of fake-chip evidence: %v, want ErrUntrustedRoot or ErrBadSignature", err)
			}
		})
	}
}

func TestAttesterErrors(t *testing.T) {
	var reportData [64]byte
	dev := fakeSevGuest(t, reportData)
	a, err := NewAttester(AttesterConfig{TSM: fakeTSM(dev, "tdx_guest")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Attest(context.Background(), reportData); !errors.Is(err, attestation.ErrNoTEE) {
		t.Errorf("Attest with a tdx_guest provider: %v, want ErrNoTEE", err)
	}
	a, err = NewAttester(AttesterConfig{TSM: brokenTSM{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Attest(context.Background(), reportData); err == nil {
		t.Error("Attest with broken configfs succeeded")
	}
}

func TestNewAttesterNoTEE(t *testing.T) {
	_, errTSM := os.Stat(tsmReportDir)
	_, errDev := os.Stat(sevGuestDevice)
	if errTSM == nil || errDev == nil {
		t.Skip("this machine has an SNP guest interface")
	}
	_, err := NewAttester(AttesterConfig{})
	if !errors.Is(err, attestation.ErrNoTEE) {
		t.Fatalf("NewAttester: %v, want ErrNoTEE", err)
	}
	t.Log(err)
}
