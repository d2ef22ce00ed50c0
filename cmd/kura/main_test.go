package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kura-cc/kura/cmd/kura/internal/cli"
	"github.com/kura-cc/kura/internal/captures"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"kura": func() {
			os.Exit(cli.Run(context.Background(), os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
		},
	})
}

// TestScripts runs the CLI black-box scripts in testdata/*.txtar.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			env.Setenv("XDG_CACHE_HOME", filepath.Join(env.WorkDir, "cache"))
			return writeVectors(filepath.Join(env.WorkDir, "vectors"))
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":   exits,
			"flipbit": flipbit,
		},
	})
}

// writeVectors writes the captured evidence the scripts verify into dir:
// the Milan report, its VCEK and cert_chain, the Genoa configfs-tsm report,
// the TDX quote with its collateral in tdx-spr/, the Azure vTPM
// captures (azureVectors), the Arm CCA token (ccaVectors) and the NVIDIA
// Hopper report with its device chain.
func writeVectors(dir string) error {
	report, vcek, askArk := captures.SNPMilan()
	files := map[string][]byte{
		"attestation.bin":        report,
		"vcek.testcer":           vcek,
		"milan.testcer":          askArk,
		"sevsnp-tsm-report.json": captures.SNPGenoaTSM(),
	}
	files["trustee-az-snp-v2.json"] = captures.TrusteeAzSNPEvidence()
	gpuReport, gpuChain, _, _ := captures.NVIDIAHopper()
	files["hopper-report.bin"], files["hopper-chain.pem"] = gpuReport, gpuChain
	for name, data := range azureVectors() {
		files[name] = data
	}
	for name, data := range ccelVectors() {
		files[name] = data
	}
	cca, err := ccaVectors()
	if err != nil {
		return err
	}
	for name, data := range cca {
		files[name] = data
	}
	if err := os.MkdirAll(filepath.Join(dir, "tdx-spr"), 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	if err := captures.WriteTDX(filepath.Join(dir, "tdx-spr"), "spr_e4"); err != nil {
		return err
	}
	if err := writeTDXCollateralJSON(dir, filepath.Join(dir, "tdx-spr")); err != nil {
		return err
	}
	return writeCoCoEvidence(dir)
}

// exits CODE PROG ARGS... runs PROG and fails unless it exits with CODE.
func exits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: bad code %q", args[0])
	}
	var path string
	for _, dir := range filepath.SplitList(ts.Getenv("PATH")) {
		if p := filepath.Join(dir, args[1]); fileExists(p) {
			path = p
			break
		}
	}
	if path == "" {
		ts.Fatalf("exits: %s not found", args[1])
	}
	cmd := exec.Command(path, args[2:]...)
	cmd.Dir = ts.MkAbs(".")
	for _, k := range []string{"PATH", "HOME", "XDG_CACHE_HOME", "TMPDIR", "KURA_DEV"} {
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	got := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		got = exitErr.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	ts.Stdout().Write(stdout.Bytes())
	ts.Stderr().Write(stderr.Bytes())
	if got != want {
		ts.Fatalf("%s exited %d, want %d\nstderr: %s", args[1], got, want, stderr.String())
	}
}

// flipbit FILE OFFSET flips the lowest bit of the byte at OFFSET.
func flipbit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbit FILE OFFSET")
	}
	off, err := strconv.ParseInt(args[1], 0, 64)
	if err != nil {
		ts.Fatalf("flipbit: %v", err)
	}
	path := ts.MkAbs(args[0])
	data, err := os.ReadFile(path)
	ts.Check(err)
	if off >= int64(len(data)) {
		ts.Fatalf("flipbit: offset %d beyond %d bytes", off, len(data))
	}
	data[off] ^= 1
	ts.Check(os.WriteFile(path, data, 0o644))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
