// Package systemd_test checks kura.service: its hardening, by parsing it,
// and, where systemd-analyze is installed, systemd's own verification and
// exposure score.
package systemd_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const unitFile = "kura.service"

// parse returns the unit's settings by section and key, joining
// continuation lines; a key given several times keeps every value.
func parse(t *testing.T, data []byte) map[string]map[string][]string {
	t.Helper()
	units := map[string]map[string][]string{}
	section, pending := "", ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			units[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: not a setting: %q", unitFile, line)
			}
			units[section][k] = append(units[section][k], v)
		}
	}
	return units
}

func TestHardening(t *testing.T) {
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	svc := parse(t, data)["Service"]
	for k, want := range map[string]string{
		"DynamicUser":             "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"NoNewPrivileges":         "yes",
		"StateDirectory":          "kura",
		"StateDirectoryMode":      "0700",
		"CapabilityBoundingSet":   "",
		"UMask":                   "0077",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
	} {
		if got := svc[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	exec := strings.Join(svc["ExecStart"], " ")
	if !strings.HasPrefix(exec, "/usr/local/bin/kura serve ") {
		t.Errorf("ExecStart=%q, want kura serve", exec)
	}
	creds := map[string]bool{}
	for _, c := range svc["LoadCredential"] {
		id, _, _ := strings.Cut(c, ":")
		creds[id] = true
	}
	// Every key file kura reads comes from a credential (%d/ID), which
	// systemd hands over as a 0400 file the service's user owns.
	for _, flag := range []string{"--tls-key", "--key", "--kek-file", "--log-key"} {
		f := strings.Fields(exec)
		i := 0
		for i < len(f) && f[i] != flag {
			i++
		}
		if i+1 >= len(f) || !strings.HasPrefix(f[i+1], "%d/") || !creds[strings.TrimPrefix(f[i+1], "%d/")] {
			t.Errorf("ExecStart: %s is not a LoadCredential file (%%d/ID)", flag)
		}
	}
	if len(svc["Environment"]) > 0 && strings.Contains(strings.ToUpper(strings.Join(svc["Environment"], " ")), "KURA_STORE=POSTGRES://") {
		t.Error("a database URL in Environment: it belongs in /etc/kura/kura.yaml, its password in a PGPASSFILE")
	}
}

// TestSystemdAnalyze runs systemd-analyze verify (which must print nothing:
// it reports an unknown or misspelt key only as a warning) and requires an
// exposure score of 2.0 or less from systemd-analyze security.
func TestSystemdAnalyze(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's binary exists: point it at one that does.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), unitFile)
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/local/bin/kura"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), "systemd-analyze", "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(t.Context(), "systemd-analyze", "security", "--offline=true", "--threshold=20", "--no-pager", unit).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure over 2.0 (%v)\n%s", err, out)
	}
}
