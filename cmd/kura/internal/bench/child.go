package bench

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/internal/web"
)

// child is a server process that a bench runs (`kura bench kbs server`,
// `kura bench verifier server`): it listens on loopback, logs to stderr,
// whose end is kept for error messages, and shuts down when its stdin
// closes.
type child struct {
	name    string // "kura", "bare", "verifier": errors say "NAME server"
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	url     string
	log     *tailBuffer // the end of its log (stderr)
	stopped bool
	err     error
}

// startChild starts command with args appended and env added to the
// environment, and waits until the process prints a line starting with
// ready to stdout: the rest of that line is its URL. The rest of stdout
// is drained.
func startChild(ctx context.Context, name string, command, args, env []string, ready string) (*child, error) {
	cmd := exec.Command(command[0], append(slices.Clip(command[1:]), args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &child{name: name, cmd: cmd, log: &tailBuffer{max: 4 << 10}}
	cmd.Stderr = p.log
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the %s server process: %w", name, err)
	}
	type listening struct {
		url string
		err error
	}
	done := make(chan listening, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if u, ok := strings.CutPrefix(lines.Text(), ready); ok {
				done <- listening{url: u}
				for lines.Scan() {
				}
				return
			}
		}
		done <- listening{err: errors.Join(errors.New("the server process exited before it listened"), lines.Err())}
	}()
	select {
	case l := <-done:
		err, p.url = l.err, l.url
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(60 * time.Second):
		err = errors.New("did not listen within 60 s")
	}
	if err != nil {
		p.stop()
		return nil, p.failed(err)
	}
	return p, nil
}

// stop ends the process: stdin closes, which it takes as the signal to
// shut down gracefully; it is killed if it has not exited after 30 s.
func (p *child) stop() error {
	if p.stopped {
		return p.err
	}
	p.stopped = true
	p.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case p.err = <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.err = errors.Join(errors.New("did not stop within 30 s: killed"), <-done)
	}
	if p.err != nil {
		p.err = p.failed(p.err)
	}
	return p.err
}

// failed adds the end of the process's log to err.
func (p *child) failed(err error) error {
	data := p.log.bytes()
	if len(data) == 0 {
		return fmt.Errorf("%s server: %w", p.name, err)
	}
	return fmt.Errorf("%s server: %w; its log ends:\n%s", p.name, err, strings.TrimSpace(string(data)))
}

// cpuTime returns the CPU time the process has used, from /proc (Linux
// only).
func (p *child) cpuTime() (time.Duration, error) {
	return procCPU(p.cmd.Process.Pid)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.buf)
}

// childServer starts the server side of a child process: the returned
// context also ends when stdin (if not nil) closes, which is how the
// bench that started the process stops it; with cpuProfile set, a CPU
// profile is written there until done; log is serverLog(stderr). done
// ends the profile and the context; it is nil with an error.
func childServer(ctx context.Context, stdin io.Reader, stderr io.Writer, cpuProfile string) (_ context.Context, log *slog.Logger, done func(), _ error) {
	ctx, cancel := context.WithCancel(ctx)
	if stdin != nil {
		go func() {
			io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	done = cancel
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			cancel()
			return nil, nil, nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			cancel()
			return nil, nil, nil, err
		}
		done = func() {
			pprof.StopCPUProfile()
			f.Close()
			cancel()
		}
	}
	return ctx, serverLog(stderr), done, nil
}

// parseChildArgs parses the arguments a bench gives its server process:
// flags only, those define sets on fs; errors are usage errors.
func parseChildArgs(name string, args []string, define func(fs *flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	return nil
}

// serverLog logs to w as kura's servers do: text, level info.
func serverLog(w io.Writer) *slog.Logger {
	return slog.New(web.ContextHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})))
}
