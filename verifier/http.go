package verifier

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/web"
)

// Register mounts the verifier API on mux. Errors are answered by their
// kind (internal/web, internal/fault): the details of evidence failures
// describe the caller's own evidence and are sent; an unavailable
// collateral source is a 503 whose cause (URLs, paths) is only logged.
//
//	POST /v1/attestation/nonce   -> {"nonce", "expires_at"}
//	POST /v1/attestation/verify  bundle -> {"token", "status", ...}
//	GET  /.well-known/jwks.json  -> the token signing keys
//	POST /v1/attestation/tpm/ak-challenge    {"ek_certificate", "ak_public", ...} -> {"challenge_id", "credential_blob", "encrypted_secret", ...}
//	POST /v1/attestation/tpm/ak-certificate  {"challenge_id", "secret"} -> the AK certificate, PEM
//	GET  /v1/attestation/tpm/ak-ca           -> the AK certificates' CA, PEM
//
// The tpm endpoints answer 404 when the Service has no AKEnroller.
func (s *Service) Register(mux *http.ServeMux, log *slog.Logger) {
	mux.Handle("POST /v1/attestation/nonce", web.Handle(log, nil, s.handleNonce))
	mux.Handle("POST /v1/attestation/verify", web.Handle(log, nil, s.handleVerify))
	mux.Handle("POST /v1/attestation/tpm/ak-challenge", web.Handle(log, nil, s.handleAKChallenge))
	mux.Handle("POST /v1/attestation/tpm/ak-certificate", web.Handle(log, nil, s.handleAKCertificate))
	mux.Handle("GET /v1/attestation/tpm/ak-ca", web.Handle(log, nil, s.handleAKCA))
	s.RegisterJWKS(mux, log)
}

// RegisterJWKS mounts only GET /.well-known/jwks.json, the token signing
// keys: what a key broker serves for its built-in verifier, so relying
// parties can list that verifier by its JWKS URL.
func (s *Service) RegisterJWKS(mux *http.ServeMux, log *slog.Logger) {
	mux.Handle("GET /.well-known/jwks.json", web.Handle(log, nil, s.handleJWKS))
}

// NonceResponse is the body of POST /v1/attestation/nonce.
type NonceResponse struct {
	Nonce     []byte    `json:"nonce"` // standard base64
	ExpiresAt time.Time `json:"expires_at"`
}

// VerifyResponse is the body of a successful POST /v1/attestation/verify.
type VerifyResponse struct {
	Token    string  `json:"token"`
	Status   string  `json:"status"`
	Insecure bool    `json:"insecure"`
	Report   *Report `json:"report"`
	Warning  string  `json:"warning,omitempty"`
}

func (s *Service) handleNonce(w http.ResponseWriter, r *http.Request) error {
	n, exp, err := s.Nonce(r.Context())
	if err != nil {
		return err
	}
	return web.WriteJSON(w, http.StatusOK, NonceResponse{Nonce: n, ExpiresAt: exp.UTC()})
}

func (s *Service) handleVerify(w http.ResponseWriter, r *http.Request) error {
	body, err := web.ReadBody(w, r, attestation.MaxBundleSize)
	if err != nil {
		return err
	}
	b, err := attestation.ParseBundle(body)
	if err != nil {
		return err
	}
	rep, err := s.Verify(r.Context(), b, Options{Freshness: IssuedNonce})
	if err != nil {
		return err
	}
	if s.issuer == nil {
		return errors.New("verifier has no token issuer")
	}
	resp := VerifyResponse{Token: string(rep.Token), Status: rep.Appraisal.Status.String(), Insecure: rep.Insecure, Report: rep}
	if rep.Insecure {
		resp.Warning = "INSECURE: simulated TEE, evidence proves nothing"
	}
	return web.WriteJSON(w, http.StatusOK, resp)
}

func (s *Service) handleJWKS(w http.ResponseWriter, r *http.Request) error {
	if s.issuer == nil {
		return web.NewProblem(http.StatusNotFound, "no-token-keys", "this verifier issues no tokens", nil)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=300")
	// Public keys: any page may read them, such as a kura web console
	// served from another origin that checks this verifier's tokens.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, err := w.Write(s.issuer.JWKS())
	return err
}
