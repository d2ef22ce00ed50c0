// Package httpsig signs and verifies HTTP requests with Ed25519 keys, for
// writes that only the holder of a known key may make (a party pushing a
// collaboration). A request carries
//
//	Authorization: Kura-Signature key="<key id>", ts="<unix seconds>", nonce="<base64>", sig="<base64>"
//
// where sig is Ed25519 over SigningString: a context naming the protocol,
// the method, the path and query, the timestamp, the nonce and the SHA-256
// of the body. The context keeps a signature made for one API from being
// accepted by another.
//
// # Security model
//
// A verifier accepts a request only if its key id names a key the caller
// allows, the signature verifies, the timestamp is within Window of the
// verifier's clock, and the nonce was not seen before (the verifier keeps
// nonces for twice Window in a store shared by replicas), so a captured
// request cannot be replayed or moved to another path or body.
package httpsig

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/fault"
)

// Scheme is the Authorization scheme.
const Scheme = "Kura-Signature"

// Window is how far a request's timestamp may be from the verifier's clock.
const Window = 5 * time.Minute

// ErrUnauthenticated means a request is unsigned, or its signature, key,
// timestamp or nonce is wrong or replayed (401 "unauthenticated").
var ErrUnauthenticated = fault.New(nil, fault.Unauthenticated, "request signature refused")

// SigningString is the message a request's signature covers.
func SigningString(context, method, pathAndQuery string, ts int64, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return fmt.Appendf(nil, "%s\n%s\n%s\n%d\n%s\n%s", context, method, pathAndQuery, ts, nonce, hex.EncodeToString(sum[:]))
}

// Sign sets req's Authorization header: keyID's Ed25519 signature (sign
// signs a message) over the request and body, made at now, for the API
// named by context.
func Sign(req *http.Request, body []byte, context, keyID string, sign func(msg []byte) []byte, now time.Time) {
	var n [16]byte
	rand.Read(n[:])
	nonce := base64.StdEncoding.EncodeToString(n[:])
	ts := now.Unix()
	sig := sign(SigningString(context, req.Method, req.URL.RequestURI(), ts, nonce, body))
	req.Header.Set("Authorization", fmt.Sprintf(`%s key="%s", ts="%d", nonce="%s", sig="%s"`,
		Scheme, keyID, ts, nonce, base64.StdEncoding.EncodeToString(sig)))
}

// Nonces remembers nonces: Add reports false when key is already there
// (store.Ephemeral implements it, shared by replicas).
type Nonces interface {
	Add(ctx context.Context, key string, value []byte, expires time.Time) (bool, error)
}

// Verifier checks signed requests for one API.
type Verifier struct {
	// Context names the API, as the signer gave it to Sign.
	Context string
	// Nonces remembers the nonces of accepted requests.
	Nonces Nonces
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verify checks r's signature over body and returns the key id that signed
// it; key returns the public key of an id the caller accepts, or false.
// Nonces are 16 to 64 characters, each used once per key.
func (v *Verifier) Verify(r *http.Request, body []byte, key func(id string) (ed25519.PublicKey, bool)) (string, error) {
	h := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(h, Scheme+" ")
	if !ok {
		return "", fmt.Errorf("%w: sign the request (Authorization: %s ...)", ErrUnauthenticated, Scheme)
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' {
			return "", fmt.Errorf("%w: malformed %s header", ErrUnauthenticated, Scheme)
		}
		params[k] = val[1 : len(val)-1]
	}
	id, nonce := params["key"], params["nonce"]
	pub, ok := key(id)
	if !ok {
		return "", fmt.Errorf("%w: key %.64q is not an authorized key for this request", ErrUnauthenticated, id)
	}
	ts, err := strconv.ParseInt(params["ts"], 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: bad timestamp", ErrUnauthenticated)
	}
	sig, err := base64.StdEncoding.DecodeString(params["sig"])
	if err != nil {
		return "", fmt.Errorf("%w: bad signature encoding", ErrUnauthenticated)
	}
	if len(nonce) < 16 || len(nonce) > 64 {
		return "", fmt.Errorf("%w: nonce must be 16 to 64 characters", ErrUnauthenticated)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	t := time.Unix(ts, 0)
	if d := now().Sub(t); d > Window || d < -Window {
		return "", fmt.Errorf("%w: timestamp %s is more than %s from the server's clock", ErrUnauthenticated, t.UTC().Format(time.RFC3339), Window)
	}
	if !ed25519.Verify(pub, SigningString(v.Context, r.Method, r.URL.RequestURI(), ts, nonce, body), sig) {
		return "", fmt.Errorf("%w: signature does not verify", ErrUnauthenticated)
	}
	sum := sha256.Sum256([]byte(v.Context + "\x00" + id + "\x00" + nonce))
	fresh, err := v.Nonces.Add(r.Context(), "request-nonce/"+hex.EncodeToString(sum[:]), nil, now().Add(2*Window))
	if err != nil {
		return "", fmt.Errorf("remember request nonce: %w", err)
	}
	if !fresh {
		return "", fmt.Errorf("%w: replayed request (nonce already used)", ErrUnauthenticated)
	}
	return id, nil
}
