package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A loadConn is one keep-alive HTTP/1.1 connection that sends one
// pre-built request over and over and reads the answers with no
// per-request allocation beyond the body it keeps: the load generator's
// cost per request stays small next to the server's.
type loadConn struct {
	c    net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte
}

func dialLoad(ctx context.Context, addr string, req []byte) (*loadConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &loadConn{c: c, br: bufio.NewReaderSize(c, 16<<10), req: req}, nil
}

// maxLoadBody bounds an answer's body.
const maxLoadBody = 1 << 20

// do sends the request and reads the answer: its status and body (valid
// until the next call).
func (lc *loadConn) do() (int, []byte, error) {
	if _, err := lc.c.Write(lc.req); err != nil {
		return 0, nil, err
	}
	line, err := lc.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		h, err := lc.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, nil, fmt.Errorf("bad header line %q", h)
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil || length < 0 || length > maxLoadBody {
				return 0, nil, fmt.Errorf("bad Content-Length %q", value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			return 0, nil, errors.New("chunked answers are not supported by the load generator")
		}
	}
	if length < 0 {
		return 0, nil, errors.New("answer without Content-Length")
	}
	if cap(lc.body) < length {
		lc.body = make([]byte, length)
	}
	lc.body = lc.body[:length]
	if _, err := io.ReadFull(lc.br, lc.body); err != nil {
		return 0, nil, err
	}
	return status, lc.body, nil
}

func asciiEqualFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}

func (lc *loadConn) close() { lc.c.Close() }

// loadTarget is what a load run sends to: the server's address, the
// request and a check of sampled answers (every checkEvery-th answer of
// each connection, and its first).
type loadTarget struct {
	addr  string
	req   []byte
	check func(body []byte) error
}

const checkEvery = 1024

// loadResult is one load run's outcome.
type loadResult struct {
	ok      int
	elapsed time.Duration
	lat     []time.Duration // paced runs: each request's latency from its scheduled time
	checked int
}

// runLoad sends requests over conns connections for d. With rate 0 each
// connection sends its next request as soon as the last is answered
// (closed loop: the most the server sustains). With rate > 0 request i is
// due at start + i/rate, whatever happened before it (open loop), and its
// latency runs from that moment to its answer, so a stalled server also
// delays, and is charged for, every request queued behind the stall (no
// coordinated omission).
func runLoad(ctx context.Context, t loadTarget, conns, rate int, d time.Duration) (*loadResult, error) {
	cs := make([]*loadConn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	for range conns {
		c, err := dialLoad(ctx, t.addr, t.req)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	var (
		next     atomic.Int64
		ok       atomic.Int64
		checked  atomic.Int64
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	start := time.Now()
	end := start.Add(d)
	var period time.Duration
	var total int64
	if rate > 0 {
		period = time.Second / time.Duration(rate)
		total = int64(d / period)
	}
	for _, c := range cs {
		wg.Go(func() {
			var local []time.Duration
			if rate > 0 {
				local = make([]time.Duration, 0, int(total)/conns+16)
			}
			for n := 0; ctx.Err() == nil; n++ {
				var due time.Time
				if rate > 0 {
					i := next.Add(1) - 1
					if i >= total {
						break
					}
					due = start.Add(time.Duration(i) * period)
					if w := time.Until(due); w > 0 {
						time.Sleep(w)
					}
				} else if !time.Now().Before(end) {
					break
				}
				status, body, err := c.do()
				if err != nil {
					fail(fmt.Errorf("request: %w", err))
					return
				}
				if status != 200 {
					fail(fmt.Errorf("answer %d: %.200s", status, body))
					return
				}
				if rate > 0 {
					local = append(local, time.Since(due))
				}
				if n%checkEvery == 0 && t.check != nil {
					if err := t.check(body); err != nil {
						fail(err)
						return
					}
					checked.Add(1)
				}
				ok.Add(1)
			}
			if rate > 0 {
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	slices.Sort(lat)
	return &loadResult{ok: int(ok.Load()), elapsed: elapsed, lat: lat, checked: int(checked.Load())}, nil
}

// p99 returns the 99th percentile of sorted latencies.
func p99(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*99/100)]
}

// procCPU returns the CPU time, user and system, that process pid has used,
// from /proc/<pid>/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return time.Duration(utime+stime) * (time.Second / 100), nil
}
