// Package swtpm starts Debian's software TPM 2.0, swtpm, for tests that
// need a real TPM: attestation/tpm's quote, verifier and attester tests,
// attestation/azure's attester tests, which emulate an Azure vTPM on it,
// and the CLI's, which reach it through its socket.
//
// # Security model
//
// Test support only: a software TPM proves nothing, and nothing outside
// tests imports this package.
package swtpm

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
)

// Socket starts swtpm serving a Unix socket in a temporary directory and
// returns the socket's path, once it exists; the TPM stops when the test
// ends. Without swtpm the test is skipped, unless CI is set: CI installs
// it.
func Socket(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("swtpm is not installed (apt-get install swtpm), and CI is set: %v", err)
		}
		t.Skip("swtpm is not installed (apt-get install swtpm); skipping the real-TPM test")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "tpm.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+filepath.Join(dir, "ctrl.sock"),
		"--flags", "not-need-init,startup-clear")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start swtpm: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	// The socket file exists once swtpm has bound it, which may be before
	// it listens: wait until a connection is accepted (and close it; swtpm
	// serves the next one).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err := net.Dial("unix", sock); err == nil {
			conn.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatalf("swtpm did not listen on %s; stderr: %s", sock, stderr.String())
		}
	}
}

// Start starts swtpm (as Socket) and returns a transport to it.
func Start(t testing.TB) transport.TPM {
	t.Helper()
	sock := Socket(t)
	var conn net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial swtpm at %s: %v", sock, err)
		}
	}
	t.Cleanup(func() { conn.Close() })
	return transport.FromReadWriter(conn)
}
