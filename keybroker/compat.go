package keybroker

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
)

// Compat selects how the KBS protocol endpoints answer clients
// (docs/spec/keybroker.md §2.2). The owner API is the same in every mode.
type Compat string

const (
	// CompatKura is the default: KBS protocol 0.1.x and 0.4.x, malformed
	// requests answered 400, and RFC 9457 problems with kura's types.
	CompatKura Compat = "kura"
	// CompatTrustee answers as Trustee's KBS does at protocol 0.4.0: only
	// version 0.4.0 and the 0.4 request shapes are accepted; every failed
	// auth or attest is 401, and problems carry Trustee's error types
	// (https://github.com/confidential-containers/kbs/errors/<Name>).
	CompatTrustee Compat = "trustee"
)

// ParseCompat parses a compatibility mode name: "kura" (or "") or
// "trustee".
func ParseCompat(s string) (Compat, error) {
	switch Compat(s) {
	case "", CompatKura:
		return CompatKura, nil
	case CompatTrustee:
		return CompatTrustee, nil
	}
	return "", fmt.Errorf("KBS compatibility mode %q: want %s or %s", s, CompatKura, CompatTrustee)
}

// TrusteeErrorBase prefixes the problem types of CompatTrustee, as Trustee
// names its errors.
const TrusteeErrorBase = "https://github.com/confidential-containers/kbs/errors/"

// TrusteeProtocolVersion is the only KBS protocol version Trustee (and
// CompatTrustee) accepts.
const TrusteeProtocolVersion = "0.4.0"

// semver is a parsed semantic version (semver.org 2.0.0).
type semver struct {
	major, minor, patch uint64
	pre                 string
}

// parseSemver parses a semantic version: MAJOR.MINOR.PATCH with optional
// -prerelease and +build (ignored), numbers without leading zeros.
func parseSemver(s string) (semver, bool) {
	var v semver
	s, _, _ = strings.Cut(s, "+")
	s, v.pre, _ = strings.Cut(s, "-")
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	nums := [3]*uint64{&v.major, &v.minor, &v.patch}
	for i, p := range parts {
		if p == "" || len(p) > 1 && p[0] == '0' || strings.TrimLeft(p, "0123456789") != "" {
			return v, false
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return v, false
		}
		*nums[i] = n
	}
	return v, true
}

// checkVersion checks a KBS Request's protocol version. Trustee requires
// exactly 0.4.0 (semver "=0.4.0": no pre-release; build metadata is
// ignored); kura by default also takes any 0.1.x and 0.4.x.
func (b *Broker) checkVersion(version string) error {
	v, ok := parseSemver(version)
	if b.compat == CompatTrustee {
		if !ok || v.major != 0 || v.minor != 4 || v.patch != 0 || v.pre != "" {
			return fmt.Errorf("%w: KBS client protocol version mismatch: expect =%s while the request is %q", ErrBadRequest, TrusteeProtocolVersion, version)
		}
		return nil
	}
	if !ok || v.major != 0 || v.minor != 1 && v.minor != 4 {
		return fmt.Errorf("%w: KBS protocol version %q; this broker speaks 0.1.x and 0.4.x", ErrBadRequest, version)
	}
	return nil
}

// kbsEndpoint names a KBS protocol endpoint, for CompatTrustee's answers.
type kbsEndpoint int

const (
	endpointAuth kbsEndpoint = iota
	endpointAttest
	endpointResource
)

// errNoToken marks a resource request that carries no attestation token at
// all: no session cookie, or a session that is unknown, expired or not
// attested (Trustee's TokenNotFound).
type errNoToken struct{ error }

func (e errNoToken) Unwrap() error { return e.error }

// compatible wraps a KBS protocol handler: in CompatTrustee its errors are
// answered as Trustee answers them. Oversized bodies (413), rate limits
// (429), full session tables (503), missing verifiers (501) and internal
// failures (500) keep kura's answers, which Trustee has no counterpart for.
func (b *Broker) compatible(e kbsEndpoint, f web.HandlerFunc) web.HandlerFunc {
	if b.compat != CompatTrustee {
		return f
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		err := f(w, r)
		if err == nil {
			return nil
		}
		return trusteeProblem(e, err)
	}
}

// trusteeProblem answers err as Trustee's KBS answers the same failure:
// its status (401 for everything but a policy refusal, 403) and its error
// type, with Trustee's detail text followed by kura's.
func trusteeProblem(e kbsEndpoint, err error) error {
	var p *web.Problem
	var maxErr *http.MaxBytesError
	if errors.As(err, &p) || errors.As(err, &maxErr) {
		return err
	}
	switch fault.KindOf(err) {
	case fault.Internal, fault.Unavailable, fault.Busy, fault.RateLimited, fault.WrongKey, fault.TooEarly:
		return err
	}
	status, name, detail := http.StatusUnauthorized, "", ""
	switch e {
	case endpointAuth:
		name, detail = "AttestationError", "Attestation error: RCAR handshake Auth failed"
	case endpointAttest:
		name, detail = "AttestationError", "Attestation error: RCAR handshake Attest failed"
	case endpointResource:
		var none errNoToken
		switch k := fault.KindOf(err); {
		case k == fault.Denied:
			status, name, detail = http.StatusForbidden, "PolicyDeny", "Access denied by policy"
		case errors.As(err, &none):
			name, detail = "TokenNotFound", "Attestation Token not found"
		case k == fault.Unauthenticated:
			name, detail = "TokenVerifierError", "Token Verifier error"
		default: // a missing resource or a malformed request: the resource plugin failed
			name, detail = "PluginInternalError", "Plugin internal error"
		}
	}
	return trusteeError(status, name, detail+": "+err.Error(), err)
}

// trusteeError is a problem with Trustee's error type name.
func trusteeError(status int, name, detail string, cause error) *web.Problem {
	p := web.NewProblem(status, "", detail, cause)
	p.Type = TrusteeErrorBase + name
	return p
}

// kbsCatchAll is the pattern that answers requests under /kbs/ that no
// route takes.
const kbsCatchAll = "/kbs/"

// probeMethods are the methods a path is tried with to find which it has.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unrouted answers requests under /kbs/ that no route of mux takes, as
// problems rather than the mux's plain text: 405 with Allow when the path
// has routes for other methods, else 404. In CompatTrustee a GET or POST
// under /kbs/v0/ is answered as Trustee answers a plugin it does not have
// (404 PluginNotFound), or for a malformed resource path, as its resource
// plugin failing (401 PluginInternalError); other methods are 405, as
// Trustee routes only GET and POST.
func (b *Broker) unrouted(mux *http.ServeMux) web.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if b.compat == CompatTrustee {
			if rest, ok := strings.CutPrefix(r.URL.Path, "/kbs/v0/"); ok && (r.Method == http.MethodGet || r.Method == http.MethodPost) {
				plugin, _, _ := strings.Cut(rest, "/")
				if plugin == "resource" && r.Method == http.MethodGet {
					return trusteeError(http.StatusUnauthorized, "PluginInternalError",
						"Plugin internal error: a resource path is /kbs/v0/resource/<repository>/<type>/<tag>", nil)
				}
				return trusteeError(http.StatusNotFound, "PluginNotFound", fmt.Sprintf("Plugin %s not found", plugin), nil)
			}
		}
		var allow []string
		for _, m := range probeMethods {
			if m == r.Method {
				continue
			}
			probe := new(http.Request)
			*probe = *r
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != kbsCatchAll && pattern != "" {
				allow = append(allow, m)
			}
		}
		if b.compat == CompatTrustee && strings.HasPrefix(r.URL.Path, "/kbs/v0/") {
			allow = []string{http.MethodGet, http.MethodPost}
		}
		if len(allow) > 0 {
			slices.Sort(allow)
			w.Header().Set("Allow", strings.Join(allow, ", "))
			return web.NewProblem(http.StatusMethodNotAllowed, "method-not-allowed",
				fmt.Sprintf("%s %s: this path takes %s", r.Method, r.URL.Path, strings.Join(allow, ", ")), nil)
		}
		return web.NewProblem(http.StatusNotFound, "not-found", fmt.Sprintf("no KBS endpoint at %s", r.URL.Path), nil)
	}
}
