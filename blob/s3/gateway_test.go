package s3

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// gateway is a versitygw S3 server with its POSIX backend, run as a child
// process on a loopback port for the tests in this package.
type gateway struct {
	endpoint string
	access   string
	secret   string
	cmd      *exec.Cmd
	exited   chan struct{}
	logPath  string // the gateway's stdout and stderr
}

// versityModule is the module whose gateway the tests run. Its version comes
// from kura's go.mod.
const versityModule = "github.com/versity/versitygw"

// gatewayBinary returns a versitygw binary of the version kura's go.mod
// requires. It is built once per machine and kept in the user cache
// directory as kura-test/versitygw-VERSION-GOOS-GOARCH, which later runs
// reuse. A build goes to a temporary name and is renamed into place, so a
// concurrent test process sees either no binary or a whole one. Without a
// user cache directory it is built into tmp for this run only. cached says
// whether the binary was already there.
func gatewayBinary(ctx context.Context, tmp string) (bin string, cached bool, err error) {
	version, err := goList(ctx, "{{.Version}}")
	if err != nil {
		return "", false, err
	}
	if version == "" {
		return "", false, fmt.Errorf("%s has no version in go.mod", versityModule)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		bin = filepath.Join(tmp, "versitygw")
		return bin, false, buildGateway(ctx, bin)
	}
	dir := filepath.Join(cache, "kura-test")
	bin = filepath.Join(dir, fmt.Sprintf("versitygw-%s-%s-%s", version, runtime.GOOS, runtime.GOARCH))
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, true, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	build, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(build)
	out := filepath.Join(build, "versitygw")
	if err := buildGateway(ctx, out); err != nil {
		return "", false, err
	}
	if err := os.Rename(out, bin); err != nil {
		return "", false, err
	}
	return bin, false, nil
}

// goList returns a field of versitygw's module as `go list -m -f` formats
// it, for kura's go.mod.
func goList(ctx context.Context, format string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", format, versityModule).Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", versityModule, cmdErr(err))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildGateway builds versitygw's command from the module cache into bin.
// It builds inside the module's own directory, with the module's own go.mod
// and go.sum, so kura's go.mod needs only the one requirement line; with a
// warm build cache this takes seconds and needs no network.
func buildGateway(ctx context.Context, bin string) error {
	src, err := goList(ctx, "{{.Dir}}")
	if err == nil && src == "" {
		// Required by go.mod but not in the module cache yet.
		if out, err := exec.CommandContext(ctx, "go", "mod", "download", versityModule).CombinedOutput(); err != nil {
			return fmt.Errorf("go mod download %s: %w\n%s", versityModule, err, out)
		}
		src, err = goList(ctx, "{{.Dir}}")
	}
	if err != nil {
		return err
	}
	if src == "" {
		return fmt.Errorf("%s is not in the module cache", versityModule)
	}
	build := exec.CommandContext(ctx, "go", "build", "-ldflags=-s -w", "-o", bin, "./cmd/versitygw")
	build.Dir = src
	build.Env = append(os.Environ(), "GOFLAGS=-mod=readonly -buildvcs=false", "GOWORK=off", "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s/cmd/versitygw: %w\n%s", versityModule, err, out)
	}
	return nil
}

func cmdErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, ee.Stderr)
	}
	return err
}

// startGateway runs bin as a POSIX-backed gateway over a directory in dir,
// on a free loopback port, with fresh random root credentials passed in its
// environment (not its command line), and waits until it answers.
func startGateway(ctx context.Context, bin, dir string) (*gateway, error) {
	var lastErr error
	for attempt := range 3 {
		root := filepath.Join(dir, fmt.Sprintf("gw%d", attempt))
		if err := os.Mkdir(root, 0o700); err != nil {
			return nil, err
		}
		g, err := tryStartGateway(ctx, bin, root)
		if err == nil {
			return g, nil
		}
		lastErr = err // most likely the free port was taken meanwhile
	}
	return nil, lastErr
}

func tryStartGateway(ctx context.Context, bin, root string) (*gateway, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()

	g := &gateway{
		endpoint: addr,
		access:   "kura" + rand.Text()[:12],
		secret:   rand.Text(),
		exited:   make(chan struct{}),
		logPath:  root + ".log",
	}
	logf, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own descriptor
	g.cmd = exec.Command(bin, "--port", addr, "--quiet", "posix", root)
	g.cmd.Env = []string{
		"HOME=" + root,
		"ROOT_ACCESS_KEY_ID=" + g.access,
		"ROOT_SECRET_ACCESS_KEY=" + g.secret,
	}
	g.cmd.Stdout = logf
	g.cmd.Stderr = logf
	setPdeathsig(g.cmd)
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		g.cmd.Wait()
		close(g.exited)
	}()

	client := g.client()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := client.ListBuckets(rctx)
		cancel()
		if err == nil {
			return g, nil
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("versitygw exited before serving: %v\n%s", g.cmd.ProcessState, g.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("versitygw on %s not ready after 30s: %v\n%s", addr, err, g.logTail())
		}
	}
}

// logTail returns the end of the gateway's output.
func (g *gateway) logTail() string {
	b, _ := os.ReadFile(g.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// client returns a root minio client for setting up buckets and for looking
// behind the Store's back.
func (g *gateway) client() *minio.Client {
	c, err := minio.New(g.endpoint, &minio.Options{Creds: credentials.NewStaticV4(g.access, g.secret, "")})
	if err != nil {
		panic(err) // only on a malformed endpoint, which we built
	}
	return c
}

// stop interrupts the gateway and waits for it, killing it if it lingers.
func (g *gateway) stop() {
	g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}
