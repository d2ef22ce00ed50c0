package inference

import (
	"bufio"
	"io"
	"net/http"
	"testing"
)

// The benchmarks compare calling the fake model server directly with
// calling it through Transport → Gateway, in the same run, over loopback:
//
//	go test ./inference -run '^$' -bench . -benchtime 2s
//
// The ratio of the two is the added latency (for the small request) and
// the throughput cost (for the stream, in tokens/s).

func benchDo(b *testing.B, c *http.Client, base string, stream bool) int {
	resp, err := c.Do(chatRequestFor(b, base, stream))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if !stream {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
			b.Fatalf("%d %v", resp.StatusCode, err)
		}
		return 0
	}
	n := len(readEvents(b, bufio.NewReader(resp.Body)))
	io.Copy(io.Discard, resp.Body)
	return n
}

// BenchmarkDirect is a small non-streaming chat completion sent straight
// to the model server.
func BenchmarkDirect(b *testing.B) {
	e := newEnv(b, nil)
	c := &http.Client{}
	for b.Loop() {
		benchDo(b, c, e.up.srv.URL, false)
	}
}

// BenchmarkThroughGateway is the same request sealed through the gateway,
// for each KEM (keys are fetched and verified once, outside the loop).
func BenchmarkThroughGateway(b *testing.B) {
	for _, s := range []Suite{{KEMX25519, KDFHKDFSHA256, AEADAES128GCM}, {KEMMLKEM768X25519, KDFHKDFSHA256, AEADAES128GCM}} {
		b.Run(kemName(s.KEM), func(b *testing.B) {
			e := newEnv(b, nil)
			c := &http.Client{Transport: e.transport(b, func(c *TransportConfig) { c.Suites = []Suite{s} })}
			benchDo(b, c, "http://x", false)
			for b.Loop() {
				benchDo(b, c, "http://x", false)
			}
		})
	}
}

func kemName(id uint16) string {
	if id == KEMX25519 {
		return "X25519"
	}
	return "MLKEM768X25519"
}

// streamTokens is the length of the benchmark stream.
const streamTokens = 256

func streamEnv(b *testing.B) *env {
	e := newEnv(b, nil)
	e.up.delay = 0
	e.up.tokens = nil
	for i := range streamTokens {
		e.up.tokens = append(e.up.tokens, sseTokens()[i%len(sseTokens())])
	}
	return e
}

// BenchmarkStreamingDirect streams 256 SSE events straight from the model
// server and reports tokens/s.
func BenchmarkStreamingDirect(b *testing.B) {
	e := streamEnv(b)
	c := &http.Client{}
	toks := 0
	for b.Loop() {
		toks += benchDo(b, c, e.up.srv.URL, true)
	}
	b.ReportMetric(float64(toks)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkStreamingThroughGateway streams the same events through the
// gateway, one sealed frame per event, and reports tokens/s.
func BenchmarkStreamingThroughGateway(b *testing.B) {
	e := streamEnv(b)
	c := &http.Client{Transport: e.transport(b, nil)}
	benchDo(b, c, "http://x", true)
	toks := 0
	for b.Loop() {
		toks += benchDo(b, c, "http://x", true)
	}
	b.ReportMetric(float64(toks)/b.Elapsed().Seconds(), "tokens/s")
}
