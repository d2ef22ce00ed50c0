package inference

import (
	"errors"
	"net/http"

	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
)

// ErrInference is the family of this package's errors.
var ErrInference = errors.New("inference")

// The sentinels of the family. Each is answered by the gateway with the
// status and problem type of docs/spec/inference.md §5, and a Transport
// that receives that problem returns an error wrapping the same sentinel.
var (
	// ErrNotEncrypted means a request is not a sealed inference request
	// (415 inference-not-encrypted). The gateway has no plaintext fallback.
	ErrNotEncrypted = fault.NewCode(ErrInference, fault.Unsupported, "inference-not-encrypted", "request is not an encrypted inference request")
	// ErrMalformed means a sealed message does not parse: a bad header,
	// frame length or inner header object (400 inference-malformed).
	ErrMalformed = fault.NewCode(ErrInference, fault.Malformed, "inference-malformed", "malformed inference message")
	// ErrTampered means a sealed message does not authenticate: a frame
	// that does not open (modified, reordered, from another exchange), a
	// stream cut before its final frame, or data after it (400
	// inference-tampered).
	ErrTampered = fault.NewCode(ErrInference, fault.Tampered, "inference-tampered", "inference message does not authenticate")
	// ErrUnknownKey means a request is sealed to a key configuration the
	// gateway does not hold (unknown, retired, or no longer accepting
	// requests): the client fetches the key configurations again and
	// retries once (422 inference-unknown-key).
	ErrUnknownKey = fault.NewCode(ErrInference, fault.Stale, "inference-unknown-key", "unknown or retired key configuration")
	// ErrReplay means the gateway has already answered a request with the
	// same encapsulated key under the same key (409 inference-replay).
	ErrReplay = fault.NewCode(ErrInference, fault.Stale, "inference-replay", "replayed request")
	// ErrTooLarge means a sealed request is over the size limit (413
	// too-large).
	ErrTooLarge = fault.NewCode(ErrInference, fault.BadRequest, "too-large", "inference request too large")
	// ErrUpstream means the gateway could not reach the model server (502
	// inference-upstream-unavailable).
	ErrUpstream = fault.NewCode(ErrInference, fault.Unavailable, "inference-upstream-unavailable", "model server unavailable")
	// ErrUnsupported means a client found no key configuration with a
	// suite it accepts; nothing was sent.
	ErrUnsupported = fault.NewCode(ErrInference, fault.Unsupported, "inference-unsupported", "no key configuration with an accepted suite")
)

// problemRow is how the gateway answers one sentinel.
type problemRow struct {
	err    error
	status int
	// detail replaces the error's text for the client when set: the cause
	// may name the model server's address.
	detail string
}

// problems is the one table from this package's errors to HTTP answers
// (docs/spec/inference.md §5). The order matters only for errors that wrap
// several sentinels: the first row that matches decides.
var problems = [...]problemRow{
	{ErrNotEncrypted, http.StatusUnsupportedMediaType, "send the request sealed as " + RequestMediaType + " (docs/spec/inference.md §3); the gateway never accepts plaintext"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, ""},
	{ErrUnknownKey, http.StatusUnprocessableEntity, "fetch the key configurations again (" + KeysPath + ") and retry"},
	{ErrReplay, http.StatusConflict, "this request was already received; seal every request afresh"},
	{ErrTampered, http.StatusBadRequest, ""},
	{ErrMalformed, http.StatusBadRequest, ""},
	{ErrUpstream, http.StatusBadGateway, "the model server could not be reached; retry later"},
}

// problemFor maps this package's errors to problems for web.Handle.
func problemFor(err error) *web.Problem {
	for _, row := range problems {
		if errors.Is(err, row.err) {
			detail := row.detail
			if detail == "" {
				detail = err.Error()
			}
			return web.NewProblem(row.status, fault.CodeOf(row.err), detail, err)
		}
	}
	return nil
}

// errorForProblem returns the sentinel a gateway's problem type stands
// for, or nil.
func errorForProblem(status int, problemType string) error {
	for _, row := range problems {
		if row.status == status && problemType == web.ProblemTypeBase+fault.CodeOf(row.err) {
			return row.err
		}
	}
	return nil
}
