package inference

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// The media types and well-known paths of docs/spec/inference.md.
const (
	// RequestMediaType is the Content-Type of a sealed request (§3).
	RequestMediaType = "application/kura-inference-request"
	// ResponseMediaType is the Content-Type of a sealed response (§4).
	ResponseMediaType = "application/kura-inference-response"
	// KeysMediaType is the Content-Type of key configurations (§2).
	KeysMediaType = "application/ohttp-keys"
	// KeysPath is where a gateway serves its key configurations (RFC 9540).
	KeysPath = "/.well-known/ohttp-gateway"
	// AttestationPath is where a gateway serves its attestation document
	// (§6).
	AttestationPath = "/.well-known/kura/attestation"
)

// Size limits of docs/spec/inference.md §3.
const (
	// MaxFrameSize is the most plaintext bytes one frame carries.
	MaxFrameSize = 64 << 10
	// DefaultMaxRequestBytes is the default bound on a sealed request's
	// body, as sent: header, encapsulated key and frames.
	DefaultMaxRequestBytes = 16 << 20
)

const (
	requestLabel  = "kura inference request v1"
	responseLabel = "kura inference response v1"
	// headerLen is the length of a request header before enc: key_id,
	// kem_id, kdf_id, aead_id.
	headerLen = 7
	// finalBit marks the final frame in a frame's length field.
	finalBit = 1 << 31
	// maxInnerValue bounds one inner header value.
	maxInnerValue = 8 << 10
)

// requestHeader is the cleartext header of a sealed request.
type requestHeader struct {
	keyID byte
	suite Suite
}

func (h requestHeader) bytes() []byte {
	b := []byte{h.keyID}
	b = binary.BigEndian.AppendUint16(b, h.suite.KEM)
	b = binary.BigEndian.AppendUint16(b, h.suite.KDF)
	return binary.BigEndian.AppendUint16(b, h.suite.AEAD)
}

// requestInfo is the HPKE info of a request: the label, a zero byte and
// the header, so that the context is bound to the key and algorithms.
func requestInfo(hdr []byte) []byte {
	info := append([]byte(requestLabel), 0)
	return append(info, hdr...)
}

// readRequestHeader reads a request's header and encapsulated key. An
// unknown KEM is ErrUnknownKey: no key configuration of this gateway
// offers it.
func readRequestHeader(r io.Reader) (requestHeader, []byte, error) {
	var b [headerLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return requestHeader{}, nil, truncated(err, "request header")
	}
	h := requestHeader{keyID: b[0], suite: Suite{
		KEM:  binary.BigEndian.Uint16(b[1:]),
		KDF:  binary.BigEndian.Uint16(b[3:]),
		AEAD: binary.BigEndian.Uint16(b[5:]),
	}}
	k, ok := kemFor(h.suite.KEM)
	if !ok {
		return h, nil, fmt.Errorf("%w: KEM 0x%04x", ErrUnknownKey, h.suite.KEM)
	}
	enc := make([]byte, k.nenc)
	if _, err := io.ReadFull(r, enc); err != nil {
		return h, nil, truncated(err, "encapsulated key")
	}
	return h, enc, nil
}

// truncated classifies an error from reading a fixed-size part.
func truncated(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: truncated %s", ErrMalformed, what)
	}
	return fmt.Errorf("reading the %s: %w", what, err)
}

// sealer seals the frames of one direction in order: an hpke.Sender for
// a request, a responseCipher for a response.
type sealer interface {
	Seal(aad, plaintext []byte) ([]byte, error)
}

// opener opens them in the same order.
type opener interface {
	Open(aad, ciphertext []byte) ([]byte, error)
}

// frameAAD is a frame's associated data: whether it is the final one.
func frameAAD(final bool) []byte {
	if final {
		return []byte{1}
	}
	return []byte{0}
}

// appendFrame seals pt as the next frame and appends it to dst.
func appendFrame(dst []byte, s sealer, pt []byte, final bool) ([]byte, error) {
	if len(pt) > MaxFrameSize || (!final && len(pt) == 0) {
		return nil, fmt.Errorf("inference: a frame of %d bytes (final %t)", len(pt), final)
	}
	ct, err := s.Seal(frameAAD(final), pt)
	if err != nil {
		return nil, fmt.Errorf("inference: sealing a frame: %w", err)
	}
	n := uint32(len(ct))
	if final {
		n |= finalBit
	}
	dst = binary.BigEndian.AppendUint32(dst, n)
	return append(dst, ct...), nil
}

// frameReader reads and opens frames one at a time.
type frameReader struct {
	r     io.Reader
	o     opener
	n     int  // frames opened
	final bool // the final frame has been opened
	buf   []byte
}

// next opens the next frame. The plaintext may alias the reader's buffer
// (a response's frames are opened in place): it is valid until the next
// call. Reading past the final frame is an error; call end instead.
func (f *frameReader) next() (pt []byte, final bool, err error) {
	if f.final {
		return nil, true, fmt.Errorf("%w: a frame after the final one", ErrTampered)
	}
	var h [4]byte
	if _, err := io.ReadFull(f.r, h[:]); err != nil {
		switch err {
		case io.EOF:
			return nil, false, fmt.Errorf("%w: the stream ends without its final frame (after %d frames)", ErrTampered, f.n)
		case io.ErrUnexpectedEOF:
			return nil, false, fmt.Errorf("%w: frame %d is truncated", ErrTampered, f.n)
		}
		return nil, false, err
	}
	v := binary.BigEndian.Uint32(h[:])
	final, n := v&finalBit != 0, int(v&^finalBit)
	switch {
	case n < tagSize || n > MaxFrameSize+tagSize:
		return nil, false, fmt.Errorf("%w: frame %d has length %d, outside %d..%d", ErrMalformed, f.n, n, tagSize, MaxFrameSize+tagSize)
	case !final && n == tagSize:
		return nil, false, fmt.Errorf("%w: frame %d is empty and not final", ErrMalformed, f.n)
	}
	if cap(f.buf) < n {
		f.buf = make([]byte, n, max(n, 4<<10))
	}
	ct := f.buf[:n]
	if _, err := io.ReadFull(f.r, ct); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, false, fmt.Errorf("%w: frame %d is truncated", ErrTampered, f.n)
		}
		return nil, false, err
	}
	pt, err = f.o.Open(frameAAD(final), ct)
	if err != nil {
		return nil, false, fmt.Errorf("%w: frame %d does not open", ErrTampered, f.n)
	}
	f.n++
	f.final = final
	return pt, final, nil
}

// end checks, after the final frame, that the stream ends there.
func (f *frameReader) end() error {
	var b [1]byte
	for {
		n, err := f.r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("%w: data after the final frame", ErrTampered)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// wipe clears the reader's buffer.
func (f *frameReader) wipe() { clear(f.buf[:cap(f.buf)]) }

// responseCipher seals or opens the frames of a response: frame i uses
// the derived nonce XOR i (docs/spec/inference.md §4).
type responseCipher struct {
	aead  cipher.AEAD
	base  []byte
	nonce []byte
	seq   uint64
}

// exporter is the Export method of an HPKE context, either side.
type exporter interface {
	Export(exporterContext string, length int) ([]byte, error)
}

// responseNonceLen is the length of a response's nonce for an AEAD:
// max(Nn, Nk).
func responseNonceLen(aeadID uint16) int {
	a, _ := aeadFor(aeadID)
	return max(a.nk, a.nn)
}

// deriveResponseKey derives a response's AEAD key and base nonce from the
// request's HPKE context (RFC 9458 §4.4, with kura's label).
func deriveResponseKey(ctx exporter, enc, responseNonce []byte, aeadID uint16) (key, nonce []byte, err error) {
	a, ok := aeadFor(aeadID)
	if !ok {
		return nil, nil, fmt.Errorf("%w: AEAD 0x%04x", ErrUnsupported, aeadID)
	}
	if len(responseNonce) != max(a.nk, a.nn) {
		return nil, nil, fmt.Errorf("%w: response nonce of %d bytes", ErrMalformed, len(responseNonce))
	}
	secret, err := ctx.Export(responseLabel, max(a.nk, a.nn))
	if err != nil {
		return nil, nil, fmt.Errorf("inference: exporting the response secret: %w", err)
	}
	defer clear(secret)
	salt := append(append(make([]byte, 0, len(enc)+len(responseNonce)), enc...), responseNonce...)
	prk, err := hkdf.Extract(sha256.New, secret, salt)
	if err != nil {
		return nil, nil, err
	}
	defer clear(prk)
	if key, err = hkdf.Expand(sha256.New, prk, "key", a.nk); err != nil {
		return nil, nil, err
	}
	if nonce, err = hkdf.Expand(sha256.New, prk, "nonce", a.nn); err != nil {
		return nil, nil, err
	}
	return key, nonce, nil
}

// newResponseCipher returns the cipher of a response.
func newResponseCipher(ctx exporter, enc, responseNonce []byte, aeadID uint16) (*responseCipher, error) {
	key, nonce, err := deriveResponseKey(ctx, enc, responseNonce, aeadID)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	var a cipher.AEAD
	switch aeadID {
	case AEADAES128GCM:
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		a, err = cipher.NewGCM(b)
		if err != nil {
			return nil, err
		}
	case AEADChaCha20Poly1305:
		if a, err = chacha20poly1305.New(key); err != nil {
			return nil, err
		}
	}
	return &responseCipher{aead: a, base: nonce, nonce: make([]byte, len(nonce))}, nil
}

func (c *responseCipher) next() ([]byte, error) {
	if c.seq == 1<<63 {
		return nil, errors.New("inference: too many response frames")
	}
	copy(c.nonce, c.base)
	for i := range 8 {
		c.nonce[len(c.nonce)-1-i] ^= byte(c.seq >> (8 * i))
	}
	return c.nonce, nil
}

// Seal seals the next frame.
func (c *responseCipher) Seal(aad, plaintext []byte) ([]byte, error) {
	nonce, err := c.next()
	if err != nil {
		return nil, err
	}
	c.seq++
	return c.aead.Seal(nil, nonce, plaintext, aad), nil
}

// Open opens the next frame in place.
func (c *responseCipher) Open(aad, ciphertext []byte) ([]byte, error) {
	nonce, err := c.next()
	if err != nil {
		return nil, err
	}
	pt, err := c.aead.Open(ciphertext[:0], nonce, ciphertext, aad)
	if err != nil {
		return nil, err
	}
	c.seq++
	return pt, nil
}

// innerRequest is the first frame of a request: the inner headers kept end
// to end (docs/spec/inference.md §3.3).
type innerRequest struct {
	Headers map[string]string `json:"headers"`
}

// innerResponse is the first frame of a response (§4.2).
type innerResponse struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
}

// requestHeaderAllowed is the allow-list of inner request headers.
func requestHeaderAllowed(name string) bool {
	return name == "content-type" || name == "accept"
}

// responseHeaderAllowed is the allow-list of inner response headers.
func responseHeaderAllowed(name string) bool {
	return name == "content-type" || name == "cache-control" || name == "retry-after"
}

// innerHeaders picks the allowed headers of h, with lower-case names and
// several values joined by ", ".
func innerHeaders(h http.Header, allowed func(string) bool) map[string]string {
	m := map[string]string{}
	for name, vs := range h {
		name = strings.ToLower(name)
		if allowed(name) && len(vs) > 0 {
			m[name] = strings.Join(vs, ", ")
		}
	}
	return m
}

// httpHeader turns allowed inner headers into an http.Header; a value that
// could split a header line is ErrMalformed.
func httpHeader(m map[string]string, allowed func(string) bool) (http.Header, error) {
	h := http.Header{}
	for name, v := range m {
		if !allowed(name) {
			continue
		}
		if len(v) > maxInnerValue || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			return nil, fmt.Errorf("%w: inner header %s has an invalid value", ErrMalformed, name)
		}
		h.Set(name, v)
	}
	return h, nil
}

// decodeInner decodes a first frame strictly. Its error never quotes the
// plaintext: the gateway logs it.
func decodeInner(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: the inner header frame is not the JSON object of §3.3/§4.2", ErrMalformed)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the inner header object", ErrMalformed)
	}
	return nil
}
