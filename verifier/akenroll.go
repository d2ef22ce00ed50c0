package verifier

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
	"github.com/kura-cc/kura/store"
)

// AKEnroller certifies TPM attestation keys after credential activation
// (docs/spec/attestation.md §4.6); attestation/tpm's PrivacyCA implements
// it. The Service keeps, between the two calls, the state MakeCredential
// returns, in its nonce store.
type AKEnroller interface {
	// MakeCredential checks an EK certificate (DER), its intermediates and
	// an AK (TPMT_PUBLIC) and returns a credential for the TPM holding
	// both, and the state Certify needs, which holds no secret.
	MakeCredential(ctx context.Context, ekCert []byte, ekChain [][]byte, akPublic []byte) (credentialBlob, encryptedSecret, state []byte, err error)
	// Certify checks the secret the TPM recovered and returns the AK's
	// certificate (DER).
	Certify(ctx context.Context, state, secret []byte) ([]byte, error)
	// CACertificate returns the certificate (DER) that AK certificates
	// chain to.
	CACertificate() []byte
}

// ErrChallenge means an AK enrolment's challenge id is unknown, expired
// or already used ("invalid-challenge", 400).
var ErrChallenge = fault.NewCode(attestation.ErrAttestation, fault.Stale, "invalid-challenge", "invalid challenge")

// AKChallengeTTL is how long an AK enrolment challenge may be answered.
const AKChallengeTTL = 5 * time.Minute

// Bounds of the enrolment requests' bodies.
const (
	maxAKChallengeBody   = 64 << 10
	maxAKCertificateBody = 4 << 10
)

// AKChallengeRequest is the body of POST /v1/attestation/tpm/ak-challenge
// (standard base64 in JSON).
type AKChallengeRequest struct {
	// EKCertificate is the TPM's EK certificate, DER.
	EKCertificate []byte `json:"ek_certificate"`
	// EKChain are intermediates up to a manufacturer's root, DER.
	EKChain [][]byte `json:"ek_chain,omitempty"`
	// AKPublic is the attestation key's TPMT_PUBLIC.
	AKPublic []byte `json:"ak_public"`
}

// AKChallengeResponse is the answer to an AKChallengeRequest: a
// TPM2_MakeCredential output for the TPM to activate.
type AKChallengeResponse struct {
	ChallengeID string `json:"challenge_id"`
	// CredentialBlob is TPM2_ActivateCredential's credentialBlob (the
	// TPMS_ID_OBJECT, without its size).
	CredentialBlob []byte `json:"credential_blob"`
	// EncryptedSecret is TPM2_ActivateCredential's secret (without its
	// size).
	EncryptedSecret []byte    `json:"encrypted_secret"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// AKCertificateRequest is the body of POST
// /v1/attestation/tpm/ak-certificate: the secret the TPM recovered.
type AKCertificateRequest struct {
	ChallengeID string `json:"challenge_id"`
	Secret      []byte `json:"secret"`
}

// pemCertificate is the media type of the enrolment endpoints' answers
// (RFC 8555 §9.1).
const pemCertificate = "application/pem-certificate-chain"

// challengeIDSize is the size of a challenge id, in bytes before hex.
const challengeIDSize = 16

func challengeKey(id string) string { return "tpm-ak-challenge/" + id }

// errNoAKCA answers the enrolment endpoints of a verifier without an AK CA.
var errNoAKCA = web.NewProblem(http.StatusNotFound, "no-ak-ca", "this verifier certifies no TPM attestation keys: its operator configured no TPM manufacturer (--tpm-ek-ca)", nil)

// decodeStrict decodes one JSON object into v: unknown fields and
// anything after the object are malformed.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", attestation.ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON object", attestation.ErrMalformed)
	}
	return nil
}

// ParseAKChallengeRequest parses the body of POST
// /v1/attestation/tpm/ak-challenge: one JSON object with ek_certificate
// and ak_public, non-empty, ek_chain optional, and no other member.
func ParseAKChallengeRequest(body []byte) (*AKChallengeRequest, error) {
	var req AKChallengeRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, fmt.Errorf("ak challenge request: %w", err)
	}
	if len(req.EKCertificate) == 0 || len(req.AKPublic) == 0 {
		return nil, fmt.Errorf("%w: ak challenge request: ek_certificate and ak_public are required", attestation.ErrMalformed)
	}
	return &req, nil
}

func (s *Service) handleAKChallenge(w http.ResponseWriter, r *http.Request) error {
	if s.akEnroller == nil {
		return errNoAKCA
	}
	body, err := web.ReadBody(w, r, maxAKChallengeBody)
	if err != nil {
		return err
	}
	ctx := r.Context()
	req, err := ParseAKChallengeRequest(body)
	if err != nil {
		s.log.WarnContext(ctx, "tpm ak enrolment refused", "reason", err)
		return err
	}
	blob, secret, state, err := s.akEnroller.MakeCredential(ctx, req.EKCertificate, req.EKChain, req.AKPublic)
	if err != nil {
		return err // the enroller logged its decision
	}
	idb := make([]byte, challengeIDSize)
	rand.Read(idb)
	id := hex.EncodeToString(idb)
	exp := s.now().Add(AKChallengeTTL)
	ok, err := s.challenges.Add(ctx, challengeKey(id), state, exp)
	switch {
	case errors.Is(err, store.ErrFull):
		return fmt.Errorf("%w: %w", ErrTooManyNonces, err)
	case err != nil:
		return fmt.Errorf("verifier: keep the ak challenge: %w", err)
	case !ok:
		return errors.New("verifier: a fresh random challenge id is already in use")
	}
	s.log.InfoContext(ctx, "tpm ak challenge issued", "challenge_id", id, "expires_at", exp.UTC())
	return web.WriteJSON(w, http.StatusOK, AKChallengeResponse{ChallengeID: id, CredentialBlob: blob, EncryptedSecret: secret, ExpiresAt: exp.UTC()})
}

func (s *Service) handleAKCertificate(w http.ResponseWriter, r *http.Request) error {
	if s.akEnroller == nil {
		return errNoAKCA
	}
	body, err := web.ReadBody(w, r, maxAKCertificateBody)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var req AKCertificateRequest
	if err := decodeStrict(body, &req); err != nil {
		err = fmt.Errorf("ak certificate request: %w", err)
		s.log.WarnContext(ctx, "tpm ak certificate refused", "reason", err)
		return err
	}
	// The challenge is taken before the secret is compared: one try each.
	var state []byte
	ok := false
	if raw, err := hex.DecodeString(req.ChallengeID); err == nil && len(raw) == challengeIDSize {
		if state, ok, err = s.challenges.Take(ctx, challengeKey(req.ChallengeID)); err != nil {
			return fmt.Errorf("verifier: take the ak challenge: %w", err)
		}
	}
	if !ok {
		err := fmt.Errorf("%w: challenge %q was not issued by this verifier, has expired (challenges live %s) or was already answered; ask for a new one",
			ErrChallenge, truncate(req.ChallengeID, 2*challengeIDSize), AKChallengeTTL)
		s.log.WarnContext(ctx, "tpm ak certificate refused", "challenge_id", truncate(req.ChallengeID, 2*challengeIDSize), "reason", err)
		return err
	}
	der, err := s.akEnroller.Certify(ctx, state, req.Secret)
	if err != nil {
		return err // the enroller logged its decision
	}
	s.log.InfoContext(ctx, "tpm ak challenge answered", "challenge_id", req.ChallengeID)
	w.Header().Set("Content-Type", pemCertificate)
	_, err = w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return err
}

func (s *Service) handleAKCA(w http.ResponseWriter, r *http.Request) error {
	if s.akEnroller == nil {
		return errNoAKCA
	}
	w.Header().Set("Content-Type", pemCertificate)
	w.Header().Set("Cache-Control", "max-age=300")
	_, err := w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.akEnroller.CACertificate()}))
	return err
}

// truncate returns s cut to n bytes, for logs and messages.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
