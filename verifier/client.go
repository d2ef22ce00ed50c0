package verifier

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/internal/fault"
	"github.com/kura-cc/kura/internal/web"
)

// Client calls a verifier's HTTP API.
type Client struct {
	// BaseURL is the verifier's address, e.g. "https://verifier.example:8443".
	BaseURL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// maxResponse bounds what the client reads from a verifier.
const maxResponse = 4 << 20

// Nonce asks the verifier for a fresh nonce.
func (c *Client) Nonce(ctx context.Context) (*NonceResponse, error) {
	var out NonceResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/attestation/nonce", nil, &out)
}

// Verify sends a bundle and returns the verifier's answer.
func (c *Client) Verify(ctx context.Context, b *attestation.Bundle) (*VerifyResponse, error) {
	body, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	var out VerifyResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/attestation/verify", body, &out)
}

// JWKS fetches the verifier's token signing keys.
func (c *Client) JWKS(ctx context.Context) ([]byte, error) {
	var raw json.RawMessage
	err := c.do(ctx, http.MethodGet, "/.well-known/jwks.json", nil, &raw)
	return raw, err
}

// Attest runs the whole attestation round trip for an attester: get a
// nonce, bind it with the public key and context into evidence, and have
// the verifier appraise it.
func (c *Client) Attest(ctx context.Context, a attestation.Attester, publicKey, context []byte) (*VerifyResponse, error) {
	n, err := c.Nonce(ctx)
	if err != nil {
		return nil, err
	}
	rd := attestation.RuntimeData{Nonce: n.Nonce, PublicKey: publicKey, Context: context}
	b, err := a.Attest(ctx, rd.ReportData())
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	b.RuntimeData = rd
	return c.Verify(ctx, b)
}

// EnrollAK enrols a TPM attestation key with the verifier's privacy CA
// (docs/spec/attestation.md §4.6): it sends the EK certificate (DER), any
// intermediates and the AK's TPMT_PUBLIC, has activate recover the
// credential's secret with the TPM (tpm.Attester.ActivateCredential),
// returns the secret and gives back the AK certificate, PEM.
func (c *Client) EnrollAK(ctx context.Context, ekCert []byte, ekChain [][]byte, akPublic []byte, activate func(credBlob, encSecret []byte) ([]byte, error)) ([]byte, error) {
	body, err := json.Marshal(AKChallengeRequest{EKCertificate: ekCert, EKChain: ekChain, AKPublic: akPublic})
	if err != nil {
		return nil, err
	}
	var ch AKChallengeResponse
	if err := c.do(ctx, http.MethodPost, "/v1/attestation/tpm/ak-challenge", body, &ch); err != nil {
		return nil, err
	}
	secret, err := activate(ch.CredentialBlob, ch.EncryptedSecret)
	if err != nil {
		return nil, fmt.Errorf("activating the verifier's credential: %w", err)
	}
	body, err = json.Marshal(AKCertificateRequest{ChallengeID: ch.ChallengeID, Secret: secret})
	clear(secret)
	if err != nil {
		return nil, err
	}
	defer clear(body)
	cert, err := c.raw(ctx, http.MethodPost, "/v1/attestation/tpm/ak-certificate", body)
	if err != nil {
		return nil, err
	}
	return checkPEMCertificate("/v1/attestation/tpm/ak-certificate", cert)
}

// AKCA fetches the certificate (PEM) of the verifier's privacy CA, which
// certifies the attestation keys it enrols: what relying parties configure
// as a TPM AK certificate authority (--tpm-ak-ca).
func (c *Client) AKCA(ctx context.Context) ([]byte, error) {
	cert, err := c.raw(ctx, http.MethodGet, "/v1/attestation/tpm/ak-ca", nil)
	if err != nil {
		return nil, err
	}
	return checkPEMCertificate("/v1/attestation/tpm/ak-ca", cert)
}

// checkPEMCertificate returns data if it is one PEM certificate.
func checkPEMCertificate(path string, data []byte) ([]byte, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("verifier: %s: the answer is not one PEM certificate", path)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("verifier: %s: %w", path, err)
	}
	return data, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	data, err := c.raw(ctx, method, path, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("verifier: %s %s: decode: %w", method, path, err)
	}
	return nil
}

// raw sends a request and returns the body of a 200 answer.
func (c *Client) raw(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("verifier: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var p web.Problem
		if json.Unmarshal(data, &p) == nil && p.Status != 0 {
			return nil, fmt.Errorf("verifier: %s %s: %d %s: %w", method, path, p.Status, p.Title, remoteError(&p))
		}
		return nil, fmt.Errorf("verifier: %s %s: %s", method, path, resp.Status)
	}
	return data, nil
}

// remoteError turns a verifier problem back into the sentinel it came from,
// so callers can test remote failures with errors.Is; the enrolment
// problems of attestation/tpm, whose sentinels this package cannot name,
// keep their kind of failure.
func remoteError(p *web.Problem) error {
	code := strings.TrimPrefix(p.Type, web.ProblemTypeBase)
	sentinel := map[string]error{
		"malformed-evidence":     attestation.ErrMalformed,
		"invalid-nonce":          attestation.ErrNonce,
		"bad-signature":          attestation.ErrBadSignature,
		"untrusted-root":         attestation.ErrUntrustedRoot,
		"binding-mismatch":       attestation.ErrBinding,
		"collateral-expired":     attestation.ErrCollateralExpired,
		"collateral-unavailable": attestation.ErrCollateralUnavailable,
		"invalid-challenge":      ErrChallenge,
	}[code]
	if sentinel == nil {
		if kind, ok := map[string]fault.Kind{"ak-attributes": fault.Untrusted, "activation-failed": fault.Denied, "no-ak-ca": fault.NotFound}[code]; ok {
			return &remoteProblem{kind: kind, detail: p.Detail}
		}
		return errors.New(p.Detail)
	}
	return fmt.Errorf("%w: %s", sentinel, strings.TrimPrefix(p.Detail, sentinel.Error()+": "))
}

// remoteProblem is a problem whose sentinel the client does not know: its
// detail, of its kind of failure.
type remoteProblem struct {
	kind   fault.Kind
	detail string
}

func (e *remoteProblem) Error() string { return e.detail }

// Unwrap returns the kind.
func (e *remoteProblem) Unwrap() error { return e.kind }
