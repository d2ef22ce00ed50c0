package azure

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/internal/tpmquote"
)

// What Azure's vTPM holds, at the indices azure-cvm-tooling, Trustee's and
// Confidential Containers' attesters use.
const (
	// hclReportIndex is the NV index the paravisor writes the HCL report
	// to.
	hclReportIndex tpm2.TPMHandle = 0x01400001
	// userDataIndex is the NV index the guest writes 64 bytes to for a
	// fresh HCL report whose runtime data has them, hex, as "user-data".
	userDataIndex tpm2.TPMHandle = 0x01400002
	userDataSize                 = 64
	// akHandle is the persistent handle of the attestation key the HCL
	// report's runtime data names (HCLAkPub).
	akHandle tpm2.TPMHandle = 0x81000003
)

// Azure's instance metadata service (IMDS), which a confidential VM reaches
// at a link-local address.
const (
	imdsTDQuote = "http://169.254.169.254/acc/tdquote"                     // POST {"report": TD report}: {"quote": TD quote}
	imdsSNPCert = "http://169.254.169.254/metadata/THIM/amd/certification" // GET: {"vcekCert", "certificateChain"}, PEM
	maxIMDSBody = 256 << 10
)

// Defaults of AttesterConfig.
const (
	defaultReportTimeout = 10 * time.Second
	reportPoll           = 100 * time.Millisecond
	imdsTimeout          = 30 * time.Second
)

// quotedPCRs returns the PCRs an Attester quotes: all 24 of the SHA-256
// bank, as Trustee's and CoCo's az-*-vtpm attesters do, so that reference
// values written for their evidence apply to kura's.
func quotedPCRs() []int {
	p := make([]int, 24)
	for i := range p {
		p[i] = i
	}
	return p
}

// AttesterConfig configures an Attester. The zero value uses the
// machine's vTPM and Azure's instance metadata service.
type AttesterConfig struct {
	// Device is the vTPM (default /dev/tpmrm0).
	Device string
	// Transport is the TPM to use instead of Device, which it overrides
	// (tests pass a swtpm emulating Azure's vTPM). The Attester does not
	// close it.
	Transport transport.TPM
	// HTTPClient reaches Azure's instance metadata service, at
	// 169.254.169.254: for az-tdx-vtpm the TD quote of the HCL report's TD
	// report, for az-snp-vtpm the VCEK and its chain. Tests point it at a
	// local server. Nil: a client without a proxy (IMDS is link-local)
	// and a 30-second timeout.
	HTTPClient *http.Client
	// ReportTimeout bounds the wait for the paravisor's fresh HCL report
	// (default 10 seconds); see Attest.
	ReportTimeout time.Duration
	// Logger receives a record per bundle, and warnings. Nil discards.
	Logger *slog.Logger
}

// Attester produces az-snp-vtpm or az-tdx-vtpm evidence on an Azure
// confidential VM (docs/spec/attestation.md §4.5): the HCL report, a quote
// by the vTPM's attestation key with report_data as qualifying data, and
// for TDX the TD quote, for SNP the VCEK. It implements
// attestation.Attester, is safe for concurrent use, and holds the vTPM
// open until Close.
//
// Nothing the Attester reads is trusted here: it checks what would make
// the verifier refuse the evidence anyway (the HCL report parses, names
// the key that quotes) so that the error says why.
type Attester struct {
	tpm    transport.TPM
	closer io.Closer
	tee    attestation.TEE
	http   *http.Client
	wait   time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	closed bool
}

var _ attestation.Attester = (*Attester)(nil)

// NewAttester returns an Attester for the vTPM, whose HCL report says
// whether this is an SEV-SNP or a TDX confidential VM. Without a TPM, or
// with a TPM that holds no HCL report (any machine but an Azure
// confidential VM), it returns an error wrapping attestation.ErrNoTEE.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	a := &Attester{tpm: cfg.Transport, http: cfg.HTTPClient, wait: cfg.ReportTimeout, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.wait <= 0 {
		a.wait = defaultReportTimeout
	}
	if a.http == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		a.http = &http.Client{Transport: t, Timeout: imdsTimeout}
	}
	if a.tpm == nil {
		dev := cfg.Device
		if dev == "" {
			dev = tpmquote.DefaultDevice
		}
		t, err := tpmquote.Open(dev)
		if err != nil {
			return nil, fmt.Errorf("azure attester: %w", err)
		}
		a.tpm, a.closer = t, t
	}
	if err := a.probe(); err != nil {
		if a.closer != nil {
			a.closer.Close()
		}
		return nil, err
	}
	return a, nil
}

// probe reads the HCL report for its TEE and checks that the attestation
// key is there.
func (a *Attester) probe() error {
	raw, err := readNV(a.tpm, hclReportIndex)
	if err != nil {
		return fmt.Errorf("%w: azure attester: the TPM has no HCL report at NV index %#08x (%v): this is not an Azure confidential VM", attestation.ErrNoTEE, uint32(hclReportIndex), err)
	}
	hcl, err := parseHCLReport(raw)
	if err != nil {
		return fmt.Errorf("%w: azure attester: NV index %#08x does not hold an HCL report (%v): this is not an Azure confidential VM", attestation.ErrNoTEE, uint32(hclReportIndex), err)
	}
	if _, err := tpmquote.ReadKey(a.tpm, akHandle); err != nil {
		return fmt.Errorf("%w: azure attester: the vTPM has an HCL report but no attestation key at %#08x: %v", attestation.ErrNoTEE, uint32(akHandle), err)
	}
	a.tee = hcl.tee
	return nil
}

// TEE returns attestation.AzSNPvTPM or AzTDXvTPM, as the HCL report says.
func (a *Attester) TEE() attestation.TEE { return a.tee }

// Attest returns an az-snp-vtpm or az-tdx-vtpm bundle.
//
// It first asks the paravisor for a fresh HCL report by writing
// reportData to NV index 0x01400002, and waits (ReportTimeout) for the
// report at 0x01400001 whose runtime data has reportData as "user-data":
// its hardware report is then current, not the one made at boot. When the
// write fails or no fresh report comes, it uses the report the index
// holds, with a warning: the binding does not need a fresh one, since the
// quote's extraData carries reportData and the HCL report only vouches for
// the attestation key. It then quotes the SHA-256 PCRs 0 to 23 with the
// key at 0x81000003, which must be the report's HCLAkPub, with reportData
// as qualifying data (all 64 bytes, as Azure's vTPM takes). For TDX it
// asks IMDS for the TD quote over the report's TD report (an error wrapping
// attestation.ErrCollateralUnavailable when it cannot: without one the
// evidence never verifies); for SNP it asks IMDS for the VCEK and its
// chain, and without them leaves the bundle's certs empty (verifiers fetch
// the VCEK from AMD) with a warning. The caller fills RuntimeData.
func (a *Attester) Attest(ctx context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("azure attester: closed")
	}
	raw, fresh, err := a.freshReport(ctx, reportData)
	if err != nil {
		return nil, err
	}
	hcl, err := parseHCLReport(raw)
	if err != nil {
		return nil, fmt.Errorf("azure attester: NV index %#08x: %w", uint32(hclReportIndex), err)
	}
	if hcl.tee != a.tee {
		return nil, fmt.Errorf("%w: azure attester: the HCL report now carries %s, not the %s it had", attestation.ErrMalformed, hcl.aHardware(), a.tee)
	}
	rd, err := parseRuntimeData(hcl.runtimeData)
	if err != nil {
		return nil, fmt.Errorf("azure attester: %w", err)
	}
	key, err := tpmquote.ReadKey(a.tpm, akHandle)
	if err != nil {
		return nil, fmt.Errorf("%w: azure attester: %v", attestation.ErrNoTEE, err)
	}
	if key.RSA == nil || !key.RSA.Equal(rd.ak) {
		return nil, fmt.Errorf("%w: azure attester: the vTPM's key at %#08x is not the HCL report's %s: the verifier would refuse its quote",
			attestation.ErrBinding, uint32(akHandle), akKeyID)
	}
	sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{tpmquote.BankSelection(tpm2.TPMAlgSHA256, quotedPCRs())}}
	q, err := tpmquote.Take(ctx, a.tpm, key, reportData, sel)
	if err != nil {
		return nil, fmt.Errorf("azure attester: %w", err)
	}
	art := Artifacts{HCLReport: raw, Quote: append(bytes.Clone(q.Attest), q.Signature...), PCRs: bytes.Join(q.PCRs, nil)}
	switch a.tee {
	case attestation.AzTDXvTPM:
		if art.TDQuote, err = a.tdQuote(ctx, hcl.hardware); err != nil {
			return nil, err
		}
	case attestation.AzSNPvTPM:
		if art.Certs, err = a.snpCerts(ctx); err != nil {
			a.log.WarnContext(ctx, "azure attester: no VCEK from IMDS; the bundle has no certs, and verifiers fetch the VCEK from AMD", "error", err)
			art.Certs = nil
		}
	}
	b, err := NewBundle(a.tee, art)
	if err != nil {
		return nil, fmt.Errorf("azure attester: %w", err)
	}
	a.log.InfoContext(ctx, "azure vtpm evidence produced", "tee", string(a.tee), "fresh_hcl_report", fresh,
		"pcr_values", len(q.PCRs), "td_quote_bytes", len(art.TDQuote), "certs_bytes", len(art.Certs))
	return b, nil
}

// freshReport writes reportData to the user-data index and returns the
// HCL report once its runtime data has it, and true; or, when the write
// fails or the wait ends, the report the index holds, and false.
func (a *Attester) freshReport(ctx context.Context, reportData [attestation.ReportDataSize]byte) ([]byte, bool, error) {
	read := func() ([]byte, error) {
		raw, err := readNV(a.tpm, hclReportIndex)
		if err != nil {
			return nil, fmt.Errorf("%w: azure attester: reading the HCL report: %v", attestation.ErrNoTEE, err)
		}
		return raw, nil
	}
	if err := writeUserData(a.tpm, reportData); err != nil {
		a.log.WarnContext(ctx, "azure attester: could not ask the paravisor for a fresh HCL report; using the one it holds", "error", err)
		raw, err := read()
		return raw, false, err
	}
	want := hex.EncodeToString(reportData[:])
	deadline := time.Now().Add(a.wait)
	for {
		raw, err := read()
		if err != nil {
			return nil, false, err
		}
		// A report the paravisor is rewriting may read torn: it does not
		// parse, or it is the old one; the next read is whole.
		if hcl, err := parseHCLReport(raw); err == nil {
			if rd, err := parseRuntimeData(hcl.runtimeData); err == nil && strings.EqualFold(rd.userData, want) {
				return raw, true, nil
			}
		}
		if time.Now().After(deadline) {
			a.log.WarnContext(ctx, "azure attester: no fresh HCL report from the paravisor in time; using the one it holds (its hardware report may predate this attestation; the quote still binds report_data)",
				"waited", a.wait.String())
			return raw, false, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(reportPoll):
		}
	}
}

// Close closes the vTPM device NewAttester opened.
func (a *Attester) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.closer == nil {
		a.closed = true
		return nil
	}
	a.closed = true
	return a.closer.Close()
}

// ownerAuth is the owner hierarchy with its (on Azure, empty) password.
func ownerAuth() tpm2.AuthHandle {
	return tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
}

// nvPublic returns an NV index's public area and name.
func nvPublic(t transport.TPM, index tpm2.TPMHandle) (*tpm2.TPMSNVPublic, tpm2.TPM2BName, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: index}.Execute(t)
	if err != nil {
		return nil, tpm2.TPM2BName{}, err
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, tpm2.TPM2BName{}, err
	}
	return pub, rsp.NVName, nil
}

// nvAuth returns the authorization for reading (or writing) an NV index:
// the owner's when the index allows it, as Azure's do, else the index's.
func nvAuth(index tpm2.TPMHandle, name tpm2.TPM2BName, owner, self bool) (tpm2.AuthHandle, error) {
	switch {
	case owner:
		return ownerAuth(), nil
	case self:
		return tpm2.AuthHandle{Handle: index, Name: name, Auth: tpm2.PasswordAuth(nil)}, nil
	}
	return tpm2.AuthHandle{}, fmt.Errorf("NV index %#08x allows neither owner nor password authorization", uint32(index))
}

// readNV reads a whole NV index, in chunks the TPM takes.
func readNV(t transport.TPM, index tpm2.TPMHandle) ([]byte, error) {
	pub, name, err := nvPublic(t, index)
	if err != nil {
		return nil, err
	}
	if int(pub.DataSize) > MaxHCLReportSize {
		return nil, fmt.Errorf("NV index %#08x holds %d bytes, more than an HCL report's %d", uint32(index), pub.DataSize, MaxHCLReportSize)
	}
	auth, err := nvAuth(index, name, pub.Attributes.OwnerRead, pub.Attributes.AuthRead)
	if err != nil {
		return nil, err
	}
	chunk := nvBufferMax(t)
	out := make([]byte, 0, pub.DataSize)
	for len(out) < int(pub.DataSize) {
		n := min(chunk, int(pub.DataSize)-len(out))
		rsp, err := tpm2.NVRead{AuthHandle: auth, NVIndex: tpm2.NamedHandle{Handle: index, Name: name}, Size: uint16(n), Offset: uint16(len(out))}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("reading NV index %#08x at %d: %w", uint32(index), len(out), err)
		}
		if len(rsp.Data.Buffer) == 0 {
			return nil, fmt.Errorf("reading NV index %#08x at %d: no data", uint32(index), len(out))
		}
		out = append(out, rsp.Data.Buffer...)
	}
	return out, nil
}

// nvBufferMax returns the most bytes one TPM2_NV_Read returns
// (TPM_PT_NV_BUFFER_MAX), or 512 when the TPM does not say.
func nvBufferMax(t transport.TPM) int {
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapTPMProperties, Property: uint32(tpm2.TPMPTNVBufferMax), PropertyCount: 1}.Execute(t)
	if err == nil {
		if props, err := rsp.CapabilityData.Data.TPMProperties(); err == nil && len(props.TPMProperty) == 1 &&
			props.TPMProperty[0].Property == tpm2.TPMPTNVBufferMax && props.TPMProperty[0].Value > 0 {
			return int(min(props.TPMProperty[0].Value, 4096))
		}
	}
	return 512
}

// writeUserData writes data to the user-data index, defining it (64
// bytes, owner-written) when it is absent or of another size.
func writeUserData(t transport.TPM, data [userDataSize]byte) error {
	pub, _, err := nvPublic(t, userDataIndex)
	define := err != nil
	if err == nil && pub.DataSize != userDataSize {
		if _, err := (tpm2.NVUndefineSpace{AuthHandle: ownerAuth(), NVIndex: userDataIndex}).Execute(t); err != nil {
			return fmt.Errorf("NV index %#08x holds %d bytes, not %d, and cannot be removed: %w", uint32(userDataIndex), pub.DataSize, userDataSize, err)
		}
		define = true
	}
	if define {
		_, err := tpm2.NVDefineSpace{
			AuthHandle: ownerAuth(),
			PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
				NVIndex: userDataIndex, NameAlg: tpm2.TPMAlgSHA256, DataSize: userDataSize,
				Attributes: tpm2.TPMANV{OwnerWrite: true, OwnerRead: true, AuthWrite: true, AuthRead: true, NT: tpm2.TPMNTOrdinary},
			}),
		}.Execute(t)
		if err != nil {
			return fmt.Errorf("defining NV index %#08x: %w", uint32(userDataIndex), err)
		}
	}
	pub, name, err := nvPublic(t, userDataIndex)
	if err != nil {
		return err
	}
	auth, err := nvAuth(userDataIndex, name, pub.Attributes.OwnerWrite, pub.Attributes.AuthWrite)
	if err != nil {
		return err
	}
	if _, err := (tpm2.NVWrite{AuthHandle: auth, NVIndex: tpm2.NamedHandle{Handle: userDataIndex, Name: name}, Data: tpm2.TPM2BMaxNVBuffer{Buffer: data[:]}}).Execute(t); err != nil {
		return fmt.Errorf("writing NV index %#08x: %w", uint32(userDataIndex), err)
	}
	return nil
}

// tdQuote asks IMDS for the TD quote over tdReport.
func (a *Attester) tdQuote(ctx context.Context, tdReport []byte) ([]byte, error) {
	body, err := json.Marshal(map[string]string{"report": base64.RawURLEncoding.EncodeToString(tdReport)})
	if err != nil {
		return nil, err
	}
	var rsp struct {
		Quote string `json:"quote"`
	}
	if err := a.imds(ctx, http.MethodPost, imdsTDQuote, body, &rsp); err != nil {
		return nil, fmt.Errorf("%w: azure attester: the TD quote: %v", attestation.ErrCollateralUnavailable, err)
	}
	q, err := decodeBase64(rsp.Quote)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: azure attester: the TD quote from %s is not base64: %v", attestation.ErrCollateralUnavailable, imdsTDQuote, err)
	case len(q) == 0 || len(q) > attestation.MaxTDQuoteSize:
		return nil, fmt.Errorf("%w: azure attester: the TD quote from %s is %d bytes, want 1 to %d", attestation.ErrCollateralUnavailable, imdsTDQuote, len(q), attestation.MaxTDQuoteSize)
	}
	return q, nil
}

// snpCerts asks IMDS for the VCEK and its chain (ASK, ARK), PEM.
func (a *Attester) snpCerts(ctx context.Context) ([]byte, error) {
	var rsp struct {
		VCEK  string `json:"vcekCert"`
		Chain string `json:"certificateChain"`
	}
	if err := a.imds(ctx, http.MethodGet, imdsSNPCert, nil, &rsp); err != nil {
		return nil, err
	}
	certs := []byte(strings.TrimSpace(rsp.VCEK) + "\n" + strings.TrimSpace(rsp.Chain) + "\n")
	if block, _ := pem.Decode(certs); block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: vcekCert is not a PEM certificate", imdsSNPCert)
	}
	return certs, nil
}

// imds makes one request to Azure's instance metadata service and decodes
// its JSON answer into out.
func (a *Attester) imds(ctx context.Context, method, url string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Metadata", "true")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s (Azure's instance metadata service, reachable only from an Azure VM): %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxIMDSBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s %s: %w", method, url, err)
	case len(data) > maxIMDSBody:
		return fmt.Errorf("%s %s: answer over %d bytes", method, url, maxIMDSBody)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s %s: %s: %.200s", method, url, resp.Status, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

// decodeBase64 decodes base64url with or without padding, as Azure sends
// it, or standard base64.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")); err == nil {
		return b, nil
	}
	return base64.StdEncoding.DecodeString(s)
}
