package keybroker

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// Trustee's own admin endpoints, as its kbs-client calls them, accepted
// with kura's owner keys (docs/spec/keybroker.md §6.2):
//
//	POST /kbs/v0/resource/{repo}/{type}/{tag}   body: the resource's bytes
//	POST /kbs/v0/resource-policy                body: {"policy": "<base64url Rego>"}
//
// A request is authenticated either as the owner API's are (Authorization:
// Kura-Signature, over method, path and body) or as Trustee authenticates
// its admin: Authorization: Bearer <JWT>, EdDSA over the JWT by the
// admin's Ed25519 key, here one of the authorized keys. The JWT covers no
// request, so it is bounded here: issued (iat) within AdminWindow of the
// broker's clock, unexpired (exp), each request (or, with a jti, each
// token) once.

// Trustee admin endpoint paths.
const (
	TrusteeResourcePrefix     = "/kbs/v0/resource/"
	TrusteeResourcePolicyPath = "/kbs/v0/resource-policy"
)

// maxAdminToken bounds the admin JWT: kbs-client's is about 200 bytes.
const maxAdminToken = 4 << 10

// ResourcePolicyRequest is the body of POST /kbs/v0/resource-policy, as
// Trustee's kbs-client sends it.
type ResourcePolicyRequest struct {
	// Policy is the Rego source, base64url without padding (padded and
	// standard base64 are accepted too).
	Policy string `json:"policy"`
}

// registerTrusteeAdmin mounts Trustee's resource and resource-policy admin
// endpoints, authorized as the owner API is (§6.1), on a broker with owner
// keys (registerAdmin calls it only then).
func (b *Broker) registerTrusteeAdmin(mux *http.ServeMux, admins *Admins) {
	h := func(f adminFunc) http.Handler {
		return b.adminHandler(func(r *http.Request, body []byte) (*admin, error) {
			return admins.authenticateTrustee(r, body, b.ephemeral)
		}, f)
	}
	by := func(ad *admin) string { return "admin:" + ad.Name }

	mux.Handle("POST "+TrusteeResourcePrefix+"{repo}/{type}/{tag}", h(func(w http.ResponseWriter, r *http.Request, body []byte, ad *admin) error {
		path, err := b.adminResource(r, ad)
		if err != nil {
			return err
		}
		v, err := b.Put(r.Context(), path, body, nil, "", by(ad))
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v})
	}))
	mux.Handle("POST "+TrusteeResourcePolicyPath, h(func(w http.ResponseWriter, r *http.Request, body []byte, ad *admin) error {
		// Trustee has one resource policy for every resource: kura's
		// default, which is the operator's (§6.1).
		if !ad.Operator {
			return b.refuse(r, ad, "", "default", fmt.Errorf("%w: Trustee's resource policy is kura's default release policy, the operator's: key %s is a tenant's (store repo/<repository> through the owner API)", ErrNotYourTenant, ad.Name))
		}
		var req ResourcePolicyRequest
		if err := decodeStrict(body, &req); err != nil {
			return err
		}
		src, err := decodeBase64Any(req.Policy)
		if err != nil {
			return fmt.Errorf("%w: policy is not base64url: %v", ErrBadRequest, err)
		}
		v, proof, err := b.SetPolicy(r.Context(), "default", string(src), by(ad))
		if err != nil {
			return err
		}
		return web.WriteJSON(w, http.StatusOK, VersionResponse{Version: v, LogProof: proof})
	}))
}

// decodeBase64Any decodes base64url or standard base64, padded or not.
func decodeBase64Any(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		var out []byte
		if out, err = enc.DecodeString(s); err == nil {
			return out, nil
		}
	}
	return nil, err
}

// authenticateTrustee authenticates a request to one of Trustee's admin
// endpoints: a Bearer JWT (verifyAdminToken) or the owner API's signature.
func (a *Admins) authenticateTrustee(r *http.Request, body []byte, seen store.Ephemeral) (*admin, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return a.authenticate(r, body, seen)
	}
	return a.verifyAdminToken(r, strings.TrimSpace(tok), body, seen)
}

// jwtHeader is the part of a JWS header the broker reads.
type jwtHeader struct {
	Alg  string          `json:"alg"`
	Crit json.RawMessage `json:"crit"`
}

// adminClaims are the claims of an admin JWT the broker checks.
type adminClaims struct {
	IssuedAt  json.Number `json:"iat"`
	Expires   json.Number `json:"exp"`
	NotBefore json.Number `json:"nbf"`
	ID        *string     `json:"jti"`
}

// numericDate parses a JWT NumericDate (seconds since the epoch, possibly
// fractional).
func numericDate(n json.Number, name string) (time.Time, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, fmt.Errorf("token claim %s is not a NumericDate", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// parseAdminToken parses a compact JWS (no cryptography): its signing
// input, header, claims and signature. It refuses any algorithm but EdDSA,
// critical header parameters, and a token without iat or exp.
func parseAdminToken(tok string) (signingInput []byte, claims *adminClaims, sig []byte, err error) {
	if len(tok) > maxAdminToken {
		return nil, nil, nil, fmt.Errorf("token is over %d bytes", maxAdminToken)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, nil, errors.New("token is not a compact JWS (header.payload.signature)")
	}
	hdrJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, nil, nil, errors.New("token header is not base64url")
	}
	var hdr jwtHeader
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		return nil, nil, nil, errors.New("token header is not a JSON object")
	}
	if hdr.Alg != "EdDSA" {
		return nil, nil, nil, fmt.Errorf("token algorithm %.32q: want EdDSA (Ed25519)", hdr.Alg)
	}
	if hdr.Crit != nil {
		return nil, nil, nil, errors.New("token has critical header parameters")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, nil, nil, errors.New("token claims are not base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	claims = new(adminClaims)
	if err := dec.Decode(claims); err != nil {
		return nil, nil, nil, errors.New("token claims are malformed (want iat, exp and nbf NumericDates, jti a string)")
	}
	if claims.IssuedAt == "" || claims.Expires == "" {
		return nil, nil, nil, errors.New("token lacks iat or exp")
	}
	if sig, err = base64.RawURLEncoding.DecodeString(parts[2]); err != nil || len(sig) != ed25519.SignatureSize {
		return nil, nil, nil, errors.New("token signature is not a base64url Ed25519 signature")
	}
	return []byte(parts[0] + "." + parts[1]), claims, sig, nil
}

// verifyAdminToken checks Trustee's admin token: an EdDSA JWT signed by one
// of the authorized keys (kbs-client names none, so each is tried), issued
// within AdminWindow of the broker's clock, not expired, not before its
// nbf. The token binds no request, so the broker remembers, until the
// token can no longer be accepted, each request it authorized — by the
// token's digest, method, path and body digest — and, for a token with a
// jti, the jti: the same request is never accepted twice, nor a token with
// a jti.
func (a *Admins) verifyAdminToken(r *http.Request, tok string, body []byte, seen store.Ephemeral) (*admin, error) {
	ad, key, what, err := a.checkAdminToken(r, tok, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAdminAuth, err)
	}
	// Remember the use past the last moment the token is acceptable
	// (iat + AdminWindow), as httpsig does nonces.
	fresh, err := seen.Add(r.Context(), key, nil, a.now().Add(2*AdminWindow))
	if err != nil {
		return nil, fmt.Errorf("remember admin token: %w", err)
	}
	if !fresh {
		return nil, fmt.Errorf("%w: %s", ErrAdminAuth, what)
	}
	return ad, nil
}

// checkAdminToken verifies tok (verifyAdminToken) and returns its signer,
// the key under which its use is remembered, and what a second use is.
func (a *Admins) checkAdminToken(r *http.Request, tok string, body []byte) (ad *admin, key, what string, err error) {
	input, claims, sig, err := parseAdminToken(tok)
	if err != nil {
		return nil, "", "", err
	}
	ids := make([]string, 0, len(a.keys))
	for id := range a.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if ed25519.Verify(a.keys[id].Public, input, sig) {
			ad = a.keys[id]
			break
		}
	}
	if ad == nil {
		return nil, "", "", errors.New("token is signed by no authorized key")
	}
	now := a.now()
	iat, err := numericDate(claims.IssuedAt, "iat")
	if err != nil {
		return nil, "", "", err
	}
	exp, err := numericDate(claims.Expires, "exp")
	if err != nil {
		return nil, "", "", err
	}
	if !now.Before(exp) {
		return nil, "", "", fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if d := now.Sub(iat); d > AdminWindow || d < -AdminWindow {
		return nil, "", "", fmt.Errorf("token issued at %s, more than %s from the server's clock (sign a new one per request)", iat.UTC().Format(time.RFC3339), AdminWindow)
	}
	if claims.NotBefore != "" {
		nbf, err := numericDate(claims.NotBefore, "nbf")
		if err != nil {
			return nil, "", "", err
		}
		if nbf.Sub(now) > AdminWindow {
			return nil, "", "", fmt.Errorf("token not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	key = "admin-jwt/" + hashOf(hashOf(tok)+"\x00"+r.Method+"\x00"+r.URL.RequestURI()+"\x00"+hashOf(string(body)))
	what = "replayed request (this token already authorized this request)"
	if claims.ID != nil {
		key, what = "admin-jwt-id/"+hashOf(ad.id+"\x00"+*claims.ID), "replayed token (its jti was already used)"
	}
	return ad, key, what, nil
}

// hashOf is the hex SHA-256 of s.
func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
