package cli

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sevabi "github.com/google/go-sev-guest/abi"
	tdxabi "github.com/google/go-tdx-guest/abi"
	tdxpb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/kura-cc/kura/internal/captures"
)

// TestAttestMeasurementHardware: the SNP and TDX manifest values, from a
// launch digest or read from a real report or quote, match what
// go-sev-guest and go-tdx-guest read from the same bytes; bad input is a
// usage error.
func TestAttestMeasurementHardware(t *testing.T) {
	dir := t.TempDir()
	report, _, _ := captures.SNPMilan()
	reportFile := filepath.Join(dir, "report.bin")
	os.WriteFile(reportFile, report, 0o600)
	rp, err := sevabi.ReportToProto(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := captures.WriteTDX(dir, "spr_e4"); err != nil {
		t.Fatal(err)
	}
	quote, _ := os.ReadFile(filepath.Join(dir, "quote.dat"))
	qp, err := tdxabi.QuoteToProto(quote)
	if err != nil {
		t.Fatal(err)
	}
	digest := strings.Repeat("5f", 48)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tee", "snp", "--report", reportFile}, hex.EncodeToString(rp.GetMeasurement())},
		{[]string{"--tee", "tdx", "--quote", filepath.Join(dir, "quote.dat")}, hex.EncodeToString(qp.(*tdxpb.QuoteV4).GetTdQuoteBody().GetMrTd())},
		{[]string{"--tee", "snp", "--launch-digest", strings.ToUpper(digest)}, digest},
		{[]string{"--tee", "tdx", "--launch-digest", "0x" + digest}, digest},
	} {
		code, out := run(context.Background(), append([]string{"attest", "measurement"}, tc.args...)...)
		if code != 0 || !strings.HasPrefix(out, tc.want+"\n") || !strings.Contains(out, "- tee: "+tc.args[1]) || strings.Contains(out, "INSECURE") {
			t.Errorf("%v: exit %d\n%s\nwant %s", tc.args, code, out, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"--tee", "snp", "--launch-digest", "abcd"}, "want 48 bytes", ExitUsage},
		{[]string{"--tee", "snp", "--quote", reportFile}, "--tee snp needs --launch-digest HEX or --report FILE", ExitUsage},
		{[]string{"--tee", "tdx", "--launch-digest", digest, "--quote", reportFile}, "give one of", ExitUsage},
		{[]string{"--tee", "snp", "--binary", reportFile}, "--binary is for --tee sim", ExitUsage},
		{[]string{"--tee", "snp", "--report", filepath.Join(dir, "quote.dat")}, "SNP report", ExitBadEvidence},
		{[]string{"--tee", "tdx", "--quote", reportFile}, "quote", ExitBadEvidence},
	} {
		code, out := run(context.Background(), append([]string{"attest", "measurement"}, tc.args...)...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, out)
		}
	}
}
