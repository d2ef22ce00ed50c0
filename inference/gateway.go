package inference

import (
	"context"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kura-cc/kura/internal/web"
)

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// Upstream is the model server (an OpenAI-compatible API such as vLLM,
	// llama.cpp or Ollama), normally on the TEE's loopback. A request for
	// path P is forwarded to Upstream's path followed by P.
	Upstream *url.URL
	// Keys are the gateway's HPKE keys.
	Keys *KeySet
	// Client sends requests to Upstream. The default follows no redirects
	// and has no overall timeout (streams may be long).
	Client *http.Client
	// MaxRequestBytes bounds a sealed request body (default
	// DefaultMaxRequestBytes).
	MaxRequestBytes int64
	// Logger receives one line per request: method, path, status, sizes
	// and duration, never content or inner headers.
	Logger *slog.Logger
	// Attestation, when set, serves GET AttestationPath.
	Attestation http.Handler
	// ServedKeys, when set, returns the key configurations served at
	// KeysPath instead of Keys.Configs: a gateway that attests its keys
	// serves those its published attestation binds (trust.Publisher.Keys),
	// so that after a rotation clients keep the previous generation, which
	// Keys still accepts, until the new one is attested. Nil from it
	// answers 503.
	ServedKeys func() []byte
}

// Gateway is the TEE side of confidential inference
// (docs/spec/inference.md): it serves its key configurations, opens sealed
// requests, forwards them to the model server, and seals the answers,
// streaming them frame by frame. It is an http.Handler.
type Gateway struct {
	upstream *url.URL
	keys     *KeySet
	client   *http.Client
	max      int64
	log      *slog.Logger
	served   func() []byte
	mux      *http.ServeMux
}

// NewGateway returns a gateway.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	switch {
	case cfg.Upstream == nil || cfg.Upstream.Scheme == "" || cfg.Upstream.Host == "":
		return nil, errors.New("inference: a gateway needs an absolute upstream URL")
	case cfg.Keys == nil:
		return nil, errors.New("inference: a gateway needs a key set")
	case cfg.MaxRequestBytes < 0:
		return nil, errors.New("inference: negative MaxRequestBytes")
	}
	g := &Gateway{upstream: cfg.Upstream, keys: cfg.Keys, client: cfg.Client, max: cfg.MaxRequestBytes, log: cfg.Logger, served: cfg.ServedKeys}
	if g.served == nil {
		g.served = cfg.Keys.Configs
	}
	if g.client == nil {
		g.client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if g.max == 0 {
		g.max = DefaultMaxRequestBytes
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.mux = http.NewServeMux()
	g.mux.HandleFunc("GET "+KeysPath, g.serveKeys)
	if cfg.Attestation != nil {
		g.mux.Handle("GET "+AttestationPath, cfg.Attestation)
	}
	g.mux.Handle("/", web.Handle(g.log, problemFor, g.serveInference))
	return g, nil
}

// ServeHTTP serves the key configurations, the attestation document and
// sealed requests.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

func (g *Gateway) serveKeys(w http.ResponseWriter, r *http.Request) {
	b := g.served()
	if b == nil {
		http.Error(w, "the gateway has no attested keys yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", KeysMediaType)
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// openedRequest is a request whose frames all opened.
type openedRequest struct {
	key       *gatewayKey
	hdr       requestHeader
	enc       []byte
	recipient *hpke.Recipient
	headers   http.Header
	body      []byte // plaintext; wipe clears it
	frames    int
}

func (o *openedRequest) wipe() { clear(o.body[:cap(o.body)]) }

// openRequest reads and opens a whole sealed request from r: the header,
// the inner header frame and the body frames up to the final one, and
// checks that nothing follows. sizeHint is the declared length, or 0. It
// does not record the request against replays.
func openRequest(ks *KeySet, r io.Reader, sizeHint int64) (*openedRequest, error) {
	h, enc, err := readRequestHeader(r)
	if err != nil {
		return nil, err
	}
	key, err := ks.lookup(h)
	if err != nil {
		return nil, err
	}
	if err := ks.checkFresh(key, enc); err != nil {
		return nil, err
	}
	kdf, _ := hpke.NewKDF(h.suite.KDF)
	aead, _ := aeadFor(h.suite.AEAD)
	rcp, err := hpke.NewRecipient(enc, key.priv, kdf, aead.aead, requestInfo(h.bytes()))
	if err != nil {
		return nil, fmt.Errorf("%w: the encapsulated key does not decapsulate", ErrTampered)
	}
	fr := &frameReader{r: r, o: rcp}
	defer fr.wipe()
	first, final, err := fr.next()
	if err != nil {
		return nil, err
	}
	var inner innerRequest
	err = decodeInner(first, &inner)
	clear(first)
	if err != nil {
		return nil, err
	}
	headers, err := httpHeader(inner.Headers, requestHeaderAllowed)
	if err != nil {
		return nil, err
	}
	o := &openedRequest{key: key, hdr: h, enc: enc, recipient: rcp, headers: headers}
	// The declared length sizes the first buffer only up to one frame:
	// memory follows the bytes that arrive, not what a client announces.
	o.body = make([]byte, 0, min(max(sizeHint, 0), MaxFrameSize))
	for !final {
		var pt []byte
		if pt, final, err = fr.next(); err != nil {
			o.wipe()
			return nil, err
		}
		o.body = appendWiping(o.body, pt)
		clear(pt)
	}
	o.frames = fr.n
	if err := fr.end(); err != nil {
		o.wipe()
		return nil, err
	}
	return o, nil
}

// appendWiping appends b to buf, clearing the old array when it has to
// grow, so that no copy of the plaintext is left behind.
func appendWiping(buf, b []byte) []byte {
	if len(buf)+len(b) > cap(buf) {
		nb := make([]byte, len(buf), max(2*cap(buf), len(buf)+len(b), 4<<10))
		copy(nb, buf)
		clear(buf[:cap(buf)])
		buf = nb
	}
	return append(buf, b...)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (g *Gateway) serveInference(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	ctx := r.Context()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != RequestMediaType {
		r.Body.Close()
		return fmt.Errorf("%w: Content-Type is not %s", ErrNotEncrypted, RequestMediaType)
	}
	if r.ContentLength > g.max {
		r.Body.Close() // the server then closes the connection instead of draining it
		return fmt.Errorf("%w: the body is %d bytes, the limit is %d", ErrTooLarge, r.ContentLength, g.max)
	}
	in := &countingReader{r: http.MaxBytesReader(w, r.Body, g.max)}
	req, err := openRequest(g.keys, in, r.ContentLength)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return fmt.Errorf("%w: the body is over the limit of %d bytes", ErrTooLarge, g.max)
		}
		return err
	}
	body := &wipingReader{b: req.body}
	defer body.Close()
	if err := g.keys.record(req.key, req.enc); err != nil {
		return err
	}

	u := *g.upstream
	u.Path, u.RawPath = strings.TrimSuffix(g.upstream.Path, "/")+r.URL.Path, ""
	if r.URL.RawPath != "" { // keep escapes such as %2F in a model name
		u.RawPath = strings.TrimSuffix(g.upstream.EscapedPath(), "/") + r.URL.RawPath
	}
	u.RawQuery = r.URL.RawQuery
	ureq, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	ureq.Header = req.headers
	ureq.ContentLength = int64(len(req.body))
	if ureq.ContentLength == 0 {
		ureq.Body = http.NoBody
	}
	resp, err := g.client.Do(ureq)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	defer resp.Body.Close()

	nonce := make([]byte, responseNonceLen(req.hdr.suite.AEAD))
	rand.Read(nonce)
	out, err := sealResponse(ctx, w, req, resp, nonce)
	level, msg := slog.LevelInfo, "inference request"
	attrs := []any{"method", r.Method, "path", r.URL.Path, "status", http.StatusOK,
		"request_bytes", in.n, "response_bytes", out, "duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		// The 200 is sent: the client sees a stream without its final
		// frame, which it reports as an error.
		level, msg = slog.LevelWarn, "inference response cut short"
		attrs = append(attrs, "reason", err)
	}
	g.log.Log(ctx, level, msg, attrs...)
	return nil
}

// sealResponse writes the sealed answer to req: the response nonce, the
// inner status and headers, then one frame per read from the upstream
// body (coalescing reads that arrive while a frame is sealed), each
// flushed, then the final frame. It returns the bytes written.
func sealResponse(ctx context.Context, w http.ResponseWriter, req *openedRequest, resp *http.Response, nonce []byte) (int64, error) {
	rc, err := newResponseCipher(req.recipient, req.enc, nonce, req.hdr.suite.AEAD)
	if err != nil {
		return 0, err
	}
	head, err := encodeInnerResponse(resp.StatusCode, resp.Header)
	if err != nil {
		return 0, err
	}
	frame, err := appendFrame(nonce, rc, head, false)
	clear(head)
	if err != nil {
		return 0, err
	}
	w.Header().Set("Content-Type", ResponseMediaType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flush := http.NewResponseController(w)
	var written int64
	send := func(b []byte) error {
		n, err := w.Write(b)
		written += int64(n)
		if err != nil {
			return fmt.Errorf("writing to the client: %w", err)
		}
		if err := flush.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("flushing to the client: %w", err)
		}
		return nil
	}
	if err := send(frame); err != nil {
		return written, err
	}
	// A reader goroutine takes the model server's answer as it comes; the
	// loop below seals what has arrived since its last frame into one
	// frame. An answer that trickles (a token stream at a model's pace)
	// goes out one read per frame, at once; one that comes faster than
	// frames can be sealed and flushed is coalesced, so the gateway keeps
	// up with the model server instead of paying a frame and a flush per
	// token.
	reads := make(chan upstreamRead, 8)
	done := make(chan struct{})
	defer close(done)
	go readUpstream(resp.Body, reads, done)
	pending := make([]byte, 0, MaxFrameSize)
	defer func() { clear(pending[:cap(pending)]) }()
	for {
		r, ok := <-reads
		var rerr error
		for ok {
			pending = append(pending, r.b...)
			clear(r.b)
			if rerr = r.err; rerr != nil || len(pending) >= MaxFrameSize {
				break
			}
			select {
			case r, ok = <-reads:
				continue
			default:
			}
			break
		}
		for len(pending) > 0 {
			n := min(len(pending), MaxFrameSize)
			if frame, err = appendFrame(frame[:0], rc, pending[:n], false); err != nil {
				return written, err
			}
			if err := send(frame); err != nil {
				return written, err
			}
			clear(pending[:n])
			pending = append(pending[:0], pending[n:]...)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return written, fmt.Errorf("reading the model server's answer: %w", rerr)
		}
		if ctx.Err() != nil {
			return written, ctx.Err()
		}
	}
	if frame, err = appendFrame(frame[:0], rc, nil, true); err != nil {
		return written, err
	}
	return written, send(frame)
}

// upstreamRead is one read from the model server's answer.
type upstreamRead struct {
	b   []byte
	err error
}

// readUpstream reads body into reads until an error (io.EOF at the end),
// or until done is closed (the handler returned; its caller closes body,
// which ends a blocked Read).
func readUpstream(body io.Reader, reads chan<- upstreamRead, done <-chan struct{}) {
	defer close(reads)
	for {
		buf := make([]byte, 16<<10)
		n, err := body.Read(buf)
		select {
		case reads <- upstreamRead{buf[:n], err}:
		case <-done:
			clear(buf[:n])
			return
		}
		if err != nil {
			return
		}
	}
}

// encodeInnerResponse is the first frame of a response.
func encodeInnerResponse(status int, h http.Header) ([]byte, error) {
	b, err := json.Marshal(innerResponse{Status: status, Headers: innerHeaders(h, responseHeaderAllowed)})
	if err != nil {
		return nil, fmt.Errorf("inference: encoding the inner response: %w", err)
	}
	return b, nil
}

// wipingReader reads a plaintext body once and clears it on Close, which
// may come from the HTTP client's goroutine or from the handler.
type wipingReader struct {
	mu     sync.Mutex
	b      []byte
	off    int
	closed bool
}

func (w *wipingReader) Read(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errors.New("inference: body closed")
	}
	if w.off >= len(w.b) {
		return 0, io.EOF
	}
	n := copy(p, w.b[w.off:])
	w.off += n
	return n, nil
}

func (w *wipingReader) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		clear(w.b[:cap(w.b)])
	}
	return nil
}
