package tdx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-tdx-guest/client"
	tdxtesting "github.com/google/go-tdx-guest/testing"

	"github.com/kura-cc/kura/attestation"
)

// reportDataOf returns the report_data of a real quote, the input that
// makes the fakes below return it.
func reportDataOf(t *testing.T, raw []byte) [64]byte {
	t.Helper()
	q, err := parseQuote(raw)
	if err != nil {
		t.Fatal(err)
	}
	return [64]byte(q.body.reportData)
}

// fakeTSM is go-configfs-tsm's fake report subsystem answering with a real
// quote for its report data, under the given provider name.
func fakeTSM(provider string, quotes map[[64]byte][]byte) configfsi.Client {
	sub := faketsm.ReportV7(0)
	base := sub.ReadAttr
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider + "\n"), nil
		case "outblob":
			q, ok := quotes[[64]byte(e.InAttrs["inblob"].Value)]
			if !ok {
				return nil, fmt.Errorf("fake TSM: no quote for this report data")
			}
			return q, nil
		}
		return base(e, attr)
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

// fakeDevice is go-tdx-guest's fake /dev/tdx_guest answering with a real
// quote for its report data.
func fakeDevice(t *testing.T, rd [64]byte, quote []byte) func() (client.Device, error) {
	return func() (client.Device, error) {
		d, err := tdxtesting.TcDevice([]tdxtesting.TestCase{{Input: rd, Quote: quote}})
		if err != nil {
			return nil, err
		}
		return d, d.Open("")
	}
}

func TestAttester(t *testing.T) {
	v4, v5 := loadVector(t, "spr_e4"), loadVector(t, "v5")
	rd4, rd5 := reportDataOf(t, v4.quote), reportDataOf(t, v5.quote)
	tests := []struct {
		name    string
		cfg     AttesterConfig
		rd      [64]byte
		want    []byte
		wantErr string
	}{
		{name: "configfs-tsm v5", cfg: AttesterConfig{TSM: fakeTSM("tdx_guest", map[[64]byte][]byte{rd5: v5.quote})}, rd: rd5, want: v5.quote},
		{name: "configfs-tsm v4", cfg: AttesterConfig{TSM: fakeTSM("tdx_guest", map[[64]byte][]byte{rd4: v4.quote})}, rd: rd4, want: v4.quote},
		{name: "configfs-tsm other provider", cfg: AttesterConfig{TSM: fakeTSM("sev_guest", map[[64]byte][]byte{rd5: v5.quote})}, rd: rd5, wantErr: `provider is "sev_guest"`},
		{name: "configfs-tsm wrong report data", cfg: AttesterConfig{TSM: fakeTSM("tdx_guest", map[[64]byte][]byte{rd4: v5.quote})}, rd: rd4, wantErr: "other report data"},
		{name: "configfs-tsm not a quote", cfg: AttesterConfig{TSM: fakeTSM("tdx_guest", map[[64]byte][]byte{rd4: []byte("privlevel: 0")})}, rd: rd4, wantErr: "bad quote"},
		{name: "tdx_guest device", cfg: AttesterConfig{OpenDevice: fakeDevice(t, rd4, v4.quote)}, rd: rd4, want: v4.quote},
		{name: "tdx_guest device fails", cfg: AttesterConfig{OpenDevice: fakeDevice(t, rd4, v4.quote)}, rd: rd5, wantErr: "no response"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAttester(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if a.TEE() != attestation.TDX {
				t.Errorf("TEE() = %q", a.TEE())
			}
			b, err := a.Attest(context.Background(), tc.rd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Attest() error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(b.Evidence) != string(tc.want) || b.TEE != attestation.TDX || b.Version != attestation.BundleVersion {
				t.Errorf("Attest() bundle = %+v", b)
			}
			// What the attester produced verifies (signature-only: the
			// fakes carry no collateral).
			v := newTestVerifier(t, Config{Now: at(pick(tc.rd == rd5, timeV5, timeV4)), AllowMissingCollateral: true})
			if _, err := v.Verify(context.Background(), b); err != nil {
				t.Errorf("Verify(attested bundle) = %v", err)
			}
		})
	}
}

func TestAttesterNoTEE(t *testing.T) {
	a, err := NewAttester(AttesterConfig{OpenDevice: func() (client.Device, error) { return nil, errors.New("no device") }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Attest(context.Background(), [64]byte{}); !errors.Is(err, attestation.ErrNoTEE) {
		t.Errorf("Attest() with no device = %v, want ErrNoTEE", err)
	}
	// This machine has neither configfs-tsm nor /dev/tdx_guest, unless
	// the tests run inside a TD.
	if _, err := NewAttester(AttesterConfig{}); err != nil && !errors.Is(err, attestation.ErrNoTEE) {
		t.Errorf("NewAttester() = %v, want nil or ErrNoTEE", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Attest(ctx, [64]byte{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Attest(cancelled) = %v", err)
	}
}

func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}
