package inference

import (
	"bytes"
	"context"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/kura-cc/kura/internal/web"
)

// maxKeysSize bounds the key configurations a client reads.
const maxKeysSize = 64 << 10

// maxProblemSize bounds the problem+json body a client reads.
const maxProblemSize = 64 << 10

// defaultSuites is the client's default preference: the post-quantum
// hybrid KEM first.
func defaultSuites() []Suite {
	return []Suite{
		{KEMMLKEM768X25519, KDFHKDFSHA256, AEADAES128GCM},
		{KEMMLKEM768X25519, KDFHKDFSHA256, AEADChaCha20Poly1305},
		{KEMX25519, KDFHKDFSHA256, AEADAES128GCM},
		{KEMX25519, KDFHKDFSHA256, AEADChaCha20Poly1305},
	}
}

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Gateway is the gateway's origin (scheme and host; no path). A request
	// for path P goes to Gateway with path P.
	Gateway *url.URL
	// Base carries the sealed messages (default http.DefaultTransport).
	Base http.RoundTripper
	// Verify decides whether the gateway may be sent anything: it gets the
	// application/ohttp-keys bytes the gateway served, checks that an
	// attested TEE holds those keys (inference/trust does), and returns
	// until when its answer holds (zero: MaxAge decides). An error fails
	// the request before anything of it is sent. Required.
	Verify func(ctx context.Context, keyConfigs []byte) (expires time.Time, err error)
	// MaxAge bounds how long verified keys are used before they are
	// fetched and verified again (default 10 minutes).
	MaxAge time.Duration
	// MaxRequestBytes bounds a sealed request (default
	// DefaultMaxRequestBytes); a larger one fails with ErrTooLarge and is
	// not sent. The plaintext body is held in memory up to this size, so
	// that a request can be sealed again after a key rotation.
	MaxRequestBytes int64
	// Suites are the suites the client accepts, most preferred first
	// (default: MLKEM768X25519 before X25519, AES-128-GCM before
	// ChaCha20Poly1305, all with HKDF-SHA256).
	Suites []Suite
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Transport is the client side of confidential inference
// (docs/spec/inference.md): an http.RoundTripper that verifies the
// gateway's keys with Verify, seals each request to them, and returns the
// inner response, whose Body opens the sealed stream frame by frame as it
// arrives. The request's scheme and host are ignored: it goes to the
// gateway, which forwards it to its model server. Only the method, the path
// and framing headers of a request are visible on the network; of its headers only those of the allow-list
// (content-type, accept) travel, sealed; Authorization, cookies and the
// rest are dropped. It is safe for concurrent use.
type Transport struct {
	cfg TransportConfig

	fetching chan struct{} // held while keys are fetched
	mu       sync.Mutex
	keys     *verifiedKeys
}

// verifiedKeys is the key configuration a Transport seals to.
type verifiedKeys struct {
	cfg     KeyConfig
	pub     hpke.PublicKey
	suite   Suite
	expires time.Time
}

// NewTransport returns a transport; it fetches nothing before its first
// request.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	switch {
	case cfg.Gateway == nil || cfg.Gateway.Scheme == "" || cfg.Gateway.Host == "":
		return nil, errors.New("inference: a transport needs the gateway's absolute URL")
	case cfg.Gateway.Path != "" && cfg.Gateway.Path != "/" || cfg.Gateway.RawQuery != "":
		return nil, errors.New("inference: the gateway URL is an origin: it has no path or query")
	case cfg.Verify == nil:
		return nil, errors.New("inference: a transport needs Verify: it never sends to an unverified gateway")
	case cfg.MaxAge < 0 || cfg.MaxRequestBytes < 0:
		return nil, errors.New("inference: negative MaxAge or MaxRequestBytes")
	}
	if cfg.Base == nil {
		cfg.Base = http.DefaultTransport
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = 10 * time.Minute
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if len(cfg.Suites) == 0 {
		cfg.Suites = defaultSuites()
	}
	for _, s := range cfg.Suites {
		if !supported(s) {
			return nil, fmt.Errorf("%w: %s is not implemented", ErrUnsupported, s)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Transport{cfg: cfg, fetching: make(chan struct{}, 1)}, nil
}

// RoundTrip seals req, sends it to the gateway and returns the inner
// response. A gateway refusal is an error wrapping the sentinel of its
// problem type; after ErrUnknownKey the keys are fetched and verified
// again and the request is sealed and sent once more.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body, err := t.readBody(req)
	if err != nil {
		return nil, err
	}
	defer clear(body[:cap(body)])
	head, err := json.Marshal(innerRequest{Headers: innerHeaders(req.Header, requestHeaderAllowed)})
	if err != nil {
		return nil, fmt.Errorf("inference: encoding the inner headers: %w", err)
	}
	defer clear(head)
	keys, err := t.verifiedKeys(ctx, nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.exchange(ctx, req, keys, head, body)
	if errors.Is(err, ErrUnknownKey) {
		if keys, err = t.verifiedKeys(ctx, keys); err != nil {
			return nil, err
		}
		resp, err = t.exchange(ctx, req, keys, head, body)
	}
	return resp, err
}

// readBody reads and closes req's body, up to MaxRequestBytes.
func (t *Transport) readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	if req.ContentLength > t.cfg.MaxRequestBytes {
		return nil, fmt.Errorf("%w: the body is %d bytes, the limit is %d; nothing was sent", ErrTooLarge, req.ContentLength, t.cfg.MaxRequestBytes)
	}
	buf := make([]byte, 0, min(max(req.ContentLength+1, 512), t.cfg.MaxRequestBytes+1))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > t.cfg.MaxRequestBytes {
				clear(buf)
				return nil, fmt.Errorf("%w: the body is over the limit of %d bytes; nothing was sent", ErrTooLarge, t.cfg.MaxRequestBytes)
			}
			nb := make([]byte, len(buf), min(2*int64(cap(buf)), t.cfg.MaxRequestBytes+1))
			copy(nb, buf)
			clear(buf)
			buf = nb
		}
		n, err := req.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			clear(buf)
			return nil, fmt.Errorf("inference: reading the request body: %w", err)
		}
	}
	if int64(len(buf)) > t.cfg.MaxRequestBytes {
		clear(buf)
		return nil, fmt.Errorf("%w: the body is over the limit of %d bytes; nothing was sent", ErrTooLarge, t.cfg.MaxRequestBytes)
	}
	return buf, nil
}

// verifiedKeys returns keys verified and not expired, other than stale:
// the cached ones, or new ones fetched and verified now.
func (t *Transport) verifiedKeys(ctx context.Context, stale *verifiedKeys) (*verifiedKeys, error) {
	usable := func() *verifiedKeys {
		t.mu.Lock()
		defer t.mu.Unlock()
		if k := t.keys; k != nil && k != stale && t.cfg.Now().Before(k.expires) {
			return k
		}
		return nil
	}
	if k := usable(); k != nil {
		return k, nil
	}
	select {
	case t.fetching <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-t.fetching }()
	if k := usable(); k != nil { // fetched while this request waited
		return k, nil
	}
	k, err := t.fetchKeys(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if t.keys == stale {
			t.keys = nil
		}
		return nil, err
	}
	t.keys = k
	return k, nil
}

// fetchKeys fetches the gateway's key configurations, picks one, and
// has Verify check them.
func (t *Transport) fetchKeys(ctx context.Context) (*verifiedKeys, error) {
	u := *t.cfg.Gateway
	u.Path, u.RawPath = KeysPath, ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header = http.Header{"Accept": {KeysMediaType}, "User-Agent": {""}}
	resp, err := t.cfg.Base.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("inference: fetching the gateway's key configurations: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysSize+1))
	if err != nil {
		return nil, fmt.Errorf("inference: fetching the gateway's key configurations: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("inference: fetching the gateway's key configurations: %w", web.ReadProblem("inference gateway", resp.StatusCode, raw))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != KeysMediaType {
		return nil, fmt.Errorf("%w: the gateway's key configurations come as %q, not %s", ErrMalformed, resp.Header.Get("Content-Type"), KeysMediaType)
	}
	if len(raw) > maxKeysSize {
		return nil, fmt.Errorf("%w: the gateway's key configurations are over %d bytes", ErrMalformed, maxKeysSize)
	}
	cfgs, err := ParseKeyConfigs(raw)
	if err != nil {
		return nil, err
	}
	k, err := choose(cfgs, t.cfg.Suites)
	if err != nil {
		return nil, err
	}
	expires, err := t.cfg.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("inference: the gateway's keys did not verify, so nothing was sent: %w", err)
	}
	k.expires = t.cfg.Now().Add(t.cfg.MaxAge)
	if !expires.IsZero() && expires.Before(k.expires) {
		k.expires = expires
	}
	return k, nil
}

// choose picks the configuration of the first preferred suite offered.
func choose(cfgs []KeyConfig, prefs []Suite) (*verifiedKeys, error) {
	for _, s := range prefs {
		for _, c := range cfgs {
			if !c.offers(s) {
				continue
			}
			kem, _ := kemFor(c.KEM)
			pub, err := kem.kem.NewPublicKey(c.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("%w: key configuration %d: invalid public key", ErrMalformed, c.KeyID)
			}
			return &verifiedKeys{cfg: c, pub: pub, suite: s}, nil
		}
	}
	return nil, fmt.Errorf("%w: the gateway offers none of the accepted suites", ErrUnsupported)
}

// sealRequest seals a request to pub: header, encapsulated key, the inner
// header frame, then the body in frames of frameSize bytes.
func sealRequest(keyID byte, pub hpke.PublicKey, s Suite, head, body []byte, frameSize int) (wire, enc []byte, snd *hpke.Sender, err error) {
	hdr := requestHeader{keyID: keyID, suite: s}.bytes()
	kdf, err := hpke.NewKDF(s.KDF)
	if err != nil {
		return nil, nil, nil, err
	}
	a, ok := aeadFor(s.AEAD)
	if !ok {
		return nil, nil, nil, fmt.Errorf("%w: AEAD 0x%04x", ErrUnsupported, s.AEAD)
	}
	enc, snd, err = hpke.NewSender(pub, kdf, a.aead, requestInfo(hdr))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("inference: sealing the request: %w", err)
	}
	frames := 1 + (len(body)+frameSize-1)/frameSize
	wire = make([]byte, 0, len(hdr)+len(enc)+len(head)+len(body)+frames*(4+tagSize))
	wire = append(append(wire, hdr...), enc...)
	if wire, err = appendFrame(wire, snd, head, len(body) == 0); err != nil {
		return nil, nil, nil, err
	}
	for len(body) > 0 {
		n := min(len(body), frameSize)
		if wire, err = appendFrame(wire, snd, body[:n], n == len(body)); err != nil {
			return nil, nil, nil, err
		}
		body = body[n:]
	}
	return wire, enc, snd, nil
}

// exchange seals and sends one request and opens the response's head.
func (t *Transport) exchange(ctx context.Context, req *http.Request, keys *verifiedKeys, head, body []byte) (*http.Response, error) {
	wire, enc, snd, err := sealRequest(keys.cfg.KeyID, keys.pub, keys.suite, head, body, MaxFrameSize)
	if err != nil {
		return nil, err
	}
	if int64(len(wire)) > t.cfg.MaxRequestBytes {
		return nil, fmt.Errorf("%w: the sealed request is %d bytes, the limit is %d; nothing was sent", ErrTooLarge, len(wire), t.cfg.MaxRequestBytes)
	}
	u := *t.cfg.Gateway
	u.Path, u.RawPath, u.RawQuery = req.URL.Path, req.URL.RawPath, req.URL.RawQuery
	if u.Path == "" {
		u.Path = "/"
	}
	outer, err := http.NewRequestWithContext(ctx, req.Method, u.String(), bytes.NewReader(wire))
	if err != nil {
		return nil, fmt.Errorf("inference: %w", err)
	}
	// Only framing travels in the clear; an empty User-Agent is not sent.
	outer.Header = http.Header{"Content-Type": {RequestMediaType}, "User-Agent": {""}}
	resp, err := t.cfg.Base.RoundTrip(outer)
	if err != nil {
		return nil, fmt.Errorf("inference: sending to the gateway: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemSize))
		remote := web.ReadProblem("inference gateway", resp.StatusCode, b)
		if sentinel := errorForProblem(remote.Status, remote.Type); sentinel != nil {
			return nil, fmt.Errorf("%w: %w", sentinel, remote)
		}
		return nil, fmt.Errorf("inference: %w", remote)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != ResponseMediaType {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: the gateway answered with Content-Type %q, not a sealed response; it is not read", ErrMalformed, resp.Header.Get("Content-Type"))
	}
	inner, err := openResponse(resp.Body, snd, enc, keys.suite.AEAD)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	inner.Proto, inner.ProtoMajor, inner.ProtoMinor = resp.Proto, resp.ProtoMajor, resp.ProtoMinor
	inner.Request, inner.TLS = req, resp.TLS
	return inner, nil
}

// openResponse reads a sealed response's nonce and inner head from body
// and returns the inner response, whose Body opens the remaining frames.
func openResponse(body io.ReadCloser, ctx exporter, enc []byte, aeadID uint16) (*http.Response, error) {
	nonce := make([]byte, responseNonceLen(aeadID))
	if _, err := io.ReadFull(body, nonce); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: the response ends inside its nonce", ErrTampered)
		}
		return nil, fmt.Errorf("inference: reading the response: %w", err)
	}
	rc, err := newResponseCipher(ctx, enc, nonce, aeadID)
	if err != nil {
		return nil, err
	}
	fr := &frameReader{r: body, o: rc}
	first, _, err := fr.next()
	if err != nil {
		return nil, err
	}
	var in innerResponse
	err = decodeInner(first, &in)
	clear(first)
	if err != nil {
		return nil, err
	}
	if in.Status < 100 || in.Status > 599 {
		return nil, fmt.Errorf("%w: inner status %d", ErrMalformed, in.Status)
	}
	h, err := httpHeader(in.Headers, responseHeaderAllowed)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", in.Status, http.StatusText(in.Status)),
		StatusCode:    in.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          &responseBody{fr: fr, outer: body},
		ContentLength: -1,
	}, nil
}

// responseBody opens a sealed response's frames as they are read. Any
// frame that does not open, a missing final frame or data after it is a
// Read error: the body never ends early without one.
type responseBody struct {
	outer io.Closer

	mu      sync.Mutex
	fr      *frameReader
	pending []byte // opened plaintext not yet read; aliases fr's buffer
	err     error  // sticky: io.EOF after a complete stream
}

func (b *responseBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pending) == 0 {
		switch {
		case b.err != nil:
			return 0, b.err
		case b.fr.final:
			if b.err = b.fr.end(); b.err == nil {
				b.err = io.EOF
			}
		default:
			b.pending, _, b.err = b.fr.next()
		}
	}
	n := copy(p, b.pending)
	clear(b.pending[:n])
	b.pending = b.pending[n:]
	return n, nil
}

// Close closes the sealed stream and clears what was not read.
func (b *responseBody) Close() error {
	err := b.outer.Close() // first: it ends a Read blocked on the network
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fr.wipe()
	b.pending = nil
	if b.err == nil {
		b.err = errors.New("inference: read on a closed response body")
	}
	return err
}
