package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// kura runs this test binary as the kura command and returns its stdout.
func kura(t *testing.T, dir string, args ...string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kura")
	if _, err := os.Lstat(bin); err != nil {
		if err := os.Symlink(self, bin); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kura %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestDataRegister: an owner seals a dataset and registers its key with its
// key broker over HTTP; the descriptor carries the sealed file's digest, and
// the key is not released to a workload that is not a clean-room run.
func TestDataRegister(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "people.csv"), []byte("email,age\nA@Example.com ,31\nb@example.com,45\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	line := kura(t, dir, "kbs", "admin-key", "-o", "owner.pem", "--name", "airline")
	if err := os.WriteFile(filepath.Join(dir, "admins"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, url := startKura(t, "kbs", "serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "state"), "--admin-keys", filepath.Join(dir, "admins"), "--dev", "--offline", "--log-level", "warn")
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()

	kura(t, dir, "data", "seal", "people.csv", "-o", "people.kura", "--dataset-id", "people 2026")
	kura(t, dir, "party", "init", "airline", "-o", "airline")
	out := kura(t, dir, "data", "register", "people.kura", "--key-file", "people.kura.key", "--identity", "airline", "--url", url, "--admin-key", "owner.pem")
	if !strings.Contains(out, "airline/dataset-key/people_2026") {
		t.Fatalf("register output: %s", out)
	}
	var d struct {
		DatasetID    string `json:"dataset_id"`
		SealedSHA256 string `json:"sealed_sha256"`
		KeyBroker    struct {
			Resource string `json:"resource"`
		} `json:"key_broker"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "people.kura.descriptor.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	sealed, _ := os.ReadFile(filepath.Join(dir, "people.kura"))
	sum := sha256.Sum256(sealed)
	if d.DatasetID != "people 2026" || d.SealedSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("descriptor = %+v, sealed sha256 %x", d, sum)
	}
	if bytes.Contains(data, []byte("REDACTED")) {
		t.Error("descriptor mentions key material")
	}

	// A dataset key goes only to clean-room runs of analyses its owner
	// approved (docs/spec/cleanroom.md §3): a plain attested fetch, even in
	// dev mode, is refused.
	cmd := exec.Command(filepath.Join(dir, "kura"), "kbs", "get-resource", d.KeyBroker.Resource, "--url", url, "--tee", "sim", "-o", "fetched.key")
	cmd.Dir = dir
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "released only to a clean-room run") {
		t.Errorf("plain fetch of a dataset key: %v\n%s", err, msg)
	}
	if _, err := os.Stat(filepath.Join(dir, "fetched.key")); err == nil {
		t.Error("the refused key was written")
	}
}
