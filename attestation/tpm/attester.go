package tpm

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/kura-cc/kura/attestation"
	"github.com/kura-cc/kura/attestation/internal/tpmquote"
)

// Where Linux publishes the event logs an Attester reads by default.
const (
	defaultEventLog = "/sys/kernel/security/tpm0/binary_bios_measurements"
	imaDir          = "/sys/kernel/security/ima"
	defaultIMAList  = imaDir + "/ascii_runtime_measurements"
)

// defaultPCRs are the PCRs an Attester quotes by default: those Linux
// measured boot extends and binary_bios_measurements records, so that the
// verifier's replay explains every one of them — 0 to 7, the firmware's
// (TCG PC Client Platform Firmware Profile: code, configuration, option
// ROMs, boot manager, GPT, Secure Boot state); 8 and 9, the boot loader's
// (GRUB's commands, and the kernel, initrd and files it loads); 14, shim's
// MOK lists — and 10, IMA's, which the IMA list explains when there is one
// (without one the verifier reports it unexplained). Left out: 11 to 13
// and 15, which systemd-stub, systemd-pcrphase and systemd-pcrextend extend
// at run time and record in systemd's own log (which a bundle does not
// carry), so quoting them would make every replay fail; 16 (debug) and 17
// to 23 (DRTM and applications).
func defaultPCRs() []int { return []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14} }

// imaAttempts bounds how often Attest quotes again because the IMA list it
// read does not replay to the quoted PCRs.
const imaAttempts = 3

// AttesterConfig configures an Attester. The zero value quotes the
// machine's TPM (/dev/tpmrm0) with an endorsement-hierarchy attestation key
// over the SHA-256 PCRs Linux measured boot uses, with its event logs.
type AttesterConfig struct {
	// Device is the TPM: a character device or a TPM emulator's Unix
	// socket (default /dev/tpmrm0, the kernel's resource manager).
	Device string
	// Transport is the TPM to use instead of Device, which it overrides
	// (tests pass a swtpm connection). The Attester does not close it.
	Transport transport.TPM
	// AKHandle is the persistent handle of the attestation key to quote
	// with (made by tpm2_createak and tpm2_evictcontrol, for example). Zero
	// creates the key on first use as a transient primary key of the
	// endorsement hierarchy from the standard AK template (RSA-2048,
	// RSASSA SHA-256; fixedTPM, fixedParent, sensitiveDataOrigin,
	// userWithAuth, restricted, sign): a primary key is derived from the
	// hierarchy's seed, so it is the same key every time and the verifier
	// can pin it once (a child key would be new and random each time).
	AKHandle tpm2.TPMHandle
	// PCRs are the PCRs to quote, 0 to 23 (default 0 to 10 and 14: the
	// firmware's, the boot loader's, IMA's and shim's; see defaultPCRs).
	PCRs []int
	// Banks are the PCR banks to quote (default SHA-256). When the IMA list
	// is in another bank (the SHA-1 ascii_runtime_measurements of kernels
	// without per-bank lists), its PCRs in that bank are quoted too, so
	// that the verifier can replay it.
	Banks []tpm2.TPMAlgID
	// EventLogPath is the TCG PC Client event log (default
	// /sys/kernel/security/tpm0/binary_bios_measurements; when the default
	// does not exist, the bundle has no event log).
	EventLogPath string
	// IMAPath is the ASCII IMA measurement list (default: in
	// /sys/kernel/security/ima, ascii_runtime_measurements_<bank> of the
	// first of Banks that has one, else ascii_runtime_measurements; when
	// none exists, the bundle has no IMA list).
	IMAPath string
	// Logger receives a record per bundle, and warnings about logs left
	// out. Nil discards.
	Logger *slog.Logger
}

// Attester produces tpm evidence (docs/spec/attestation.md §4.6): a
// TPM2_Quote whose qualifying data is report_data, the quoted PCR values,
// the attestation key's TPMT_PUBLIC and the event logs. It implements
// attestation.Attester, is safe for concurrent use, and holds the TPM open
// until Close.
type Attester struct {
	tpm       transport.TPM
	closer    io.Closer // the device NewAttester opened; nil for a Transport
	pcrs      []int
	banks     []tpm2.TPMAlgID
	allocated map[tpm2.TPMAlgID]bool
	eventLog  logFile
	ima       logFile
	log       *slog.Logger

	mu        sync.Mutex
	ak        *tpmquote.Key
	transient bool // ak is a primary key this Attester created and flushes
	closed    bool
}

// logFile is an event log's path; a missing file is an error only when the
// path was configured.
type logFile struct {
	path     string
	explicit bool
}

var _ attestation.Attester = (*Attester)(nil)

// NewAttester returns an Attester for cfg. Without a TPM it returns an
// error wrapping attestation.ErrNoTEE; so it does when the TPM lacks a
// configured bank or the configured attestation key.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	a := &Attester{pcrs: slices.Clone(cfg.PCRs), banks: slices.Clone(cfg.Banks), log: cfg.Logger,
		eventLog: logFile{cfg.EventLogPath, cfg.EventLogPath != ""}, ima: logFile{cfg.IMAPath, cfg.IMAPath != ""}}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if len(a.pcrs) == 0 {
		a.pcrs = defaultPCRs()
	}
	slices.Sort(a.pcrs)
	a.pcrs = slices.Compact(a.pcrs)
	if a.pcrs[0] < 0 || a.pcrs[len(a.pcrs)-1] >= numPCRs {
		return nil, fmt.Errorf("tpm attester: PCRs %v: want 0 to %d", a.pcrs, numPCRs-1)
	}
	if len(a.banks) == 0 {
		a.banks = []tpm2.TPMAlgID{tpm2.TPMAlgSHA256}
	}
	for _, b := range a.banks {
		if _, ok := banks[uint16(b)]; !ok {
			return nil, fmt.Errorf("tpm attester: PCR bank %#04x: want SHA-1, SHA-256, SHA-384 or SHA-512", uint16(b))
		}
	}
	if !a.eventLog.explicit {
		a.eventLog.path = defaultEventLog
	}
	if !a.ima.explicit {
		a.ima.path = defaultIMAList
		for _, b := range a.banks {
			if p := defaultIMAList + "_" + banks[uint16(b)].Name; exists(p) {
				a.ima.path = p
				break
			}
		}
	}

	a.tpm = cfg.Transport
	if a.tpm == nil {
		dev := cfg.Device
		if dev == "" {
			dev = tpmquote.DefaultDevice
		}
		t, err := tpmquote.Open(dev)
		if err != nil {
			return nil, fmt.Errorf("tpm attester: %w", err)
		}
		a.tpm, a.closer = t, t
	}
	if err := a.probe(cfg.AKHandle); err != nil {
		if a.closer != nil {
			a.closer.Close()
		}
		return nil, err
	}
	return a, nil
}

// probe checks that the TPM answers, has the banks and, when one is
// configured, the attestation key.
func (a *Attester) probe(akHandle tpm2.TPMHandle) error {
	var err error
	if a.allocated, err = tpmquote.AllocatedBanks(a.tpm); err != nil {
		return fmt.Errorf("%w: tpm attester: the TPM does not answer as a TPM 2.0: %v", attestation.ErrNoTEE, err)
	}
	for _, b := range a.banks {
		if !a.allocated[b] {
			var have []string
			for alg := range a.allocated {
				if bk, ok := banks[uint16(alg)]; ok {
					have = append(have, bk.Name)
				}
			}
			slices.Sort(have)
			return fmt.Errorf("%w: tpm attester: the TPM has no %s PCR bank allocated (it has %v)", attestation.ErrNoTEE, banks[uint16(b)].Name, have)
		}
	}
	if akHandle == 0 {
		return nil
	}
	k, err := tpmquote.ReadKey(a.tpm, akHandle)
	if err != nil {
		return fmt.Errorf("%w: tpm attester: no attestation key at handle %#08x (%v): make one persistent there (tpm2_createak, tpm2_evictcontrol), or leave the handle unset for an endorsement-hierarchy key",
			attestation.ErrNoTEE, uint32(akHandle), err)
	}
	if err := checkAKPublic(k); err != nil {
		return fmt.Errorf("tpm attester: the key at handle %#08x: %w", uint32(akHandle), err)
	}
	a.ak = k
	return nil
}

// checkAKPublic refuses a key the verifier would refuse: one that is not
// a restricted RSA signing key the TPM generated.
func checkAKPublic(k *tpmquote.Key) error {
	ak, err := parseAK(k.Public)
	if err != nil {
		return err
	}
	return ak.checkAttributes()
}

// akTemplate is the standard RSA attestation key template: the attributes
// and scheme of go-tpm-tools' AKTemplateRSA and tpm2_createak's defaults,
// with an empty unique field.
func akTemplate() tpm2.TPMTPublic {
	return tpm2.TPMTPublic{
		Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
			Scheme:  tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSASSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256})},
			KeyBits: 2048,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
	}
}

// key returns the attestation key, creating the endorsement-hierarchy
// primary on first use. a.mu is held.
func (a *Attester) key() (*tpmquote.Key, error) {
	if a.ak != nil {
		return a.ak, nil
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(akTemplate()),
	}.Execute(a.tpm)
	if err != nil {
		return nil, fmt.Errorf("%w: tpm attester: creating the attestation key (an RSA-2048 primary key of the endorsement hierarchy): %v; "+
			"if the endorsement hierarchy has a password, make an attestation key persistent and give its handle", attestation.ErrNoTEE, err)
	}
	k, err := tpmquote.KeyOf(rsp.ObjectHandle, rsp.Name, rsp.OutPublic)
	if err != nil {
		tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(a.tpm)
		return nil, fmt.Errorf("tpm attester: %w", err)
	}
	a.ak, a.transient = k, true
	return k, nil
}

// AttestationKey returns the public key of the attestation key the
// Attester quotes with, creating it if need be, for verifiers to pin
// (Config.AKs; PEM-encoded PKIX, as LoadAKs reads it).
func (a *Attester) AttestationKey() (*rsa.PublicKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm attester: closed")
	}
	k, err := a.key()
	if err != nil {
		return nil, err
	}
	if k.RSA == nil {
		return nil, fmt.Errorf("%w: tpm attester: the attestation key at %#08x is not an RSA key", attestation.ErrMalformed, uint32(k.Handle))
	}
	return k.RSA, nil
}

// TEE returns attestation.TPM.
func (a *Attester) TEE() attestation.TEE { return attestation.TPM }

// Attest returns a tpm bundle: a quote by the attestation key over the
// configured PCRs with reportData as qualifying data (tpmquote.Take: all 64
// bytes, or the first 48 or 32 on a TPM that takes fewer), the PCR
// values, and the event logs, read after the quote. Logs the verifier
// would refuse (over its size limit, or that kura cannot parse) are left
// out with a warning. The caller fills RuntimeData.
func (a *Attester) Attest(ctx context.Context, reportData [attestation.ReportDataSize]byte) (*attestation.Bundle, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("tpm attester: closed")
	}
	ak, err := a.key()
	if err != nil {
		return nil, err
	}
	sel := a.selection()

	// IMA appends to its list and extends PCR 10 as files are measured, at
	// any time, so the list read at any moment need not match a quote. The
	// kernel appends each entry to the list before extending the PCR, so a
	// list read after the quote holds every entry the quoted value covers,
	// and perhaps some more: trimIMA keeps the shortest prefix that replays
	// to the quoted values, leaving out entries measured after the quote.
	// When no prefix does (something other than IMA extended the PCR, or an
	// entry was listed but not yet extended when the PCRs were read),
	// Attest quotes again, and after imaAttempts it ships the whole list,
	// for the verifier to refuse naming the PCR.
	var (
		q             *tpmquote.Quote
		eventLog, ima []byte
		matched       bool
	)
	for attempt := 1; attempt <= imaAttempts && !matched; attempt++ {
		if q, err = tpmquote.Take(ctx, a.tpm, ak, reportData, sel); err != nil {
			return nil, fmt.Errorf("tpm attester: %w", err)
		}
		if eventLog, err = a.eventLog.read(ctx, "event log", a.log); err != nil {
			return nil, err
		}
		raw, err := a.ima.read(ctx, "IMA list", a.log)
		if err != nil {
			return nil, err
		}
		if ima, matched, err = trimIMA(raw, q.Value); err != nil {
			a.log.WarnContext(ctx, "tpm attester: leaving the IMA list out: the verifier would refuse it", "path", a.ima.path, "error", err)
			ima, matched = nil, true
		}
	}
	if !matched {
		a.log.WarnContext(ctx, "tpm attester: the IMA list does not replay to the quoted PCRs; shipping it whole, for the verifier to refuse naming the PCR",
			"path", a.ima.path, "attempts", imaAttempts)
	}
	eventLog = a.checkLog(ctx, "event log", a.eventLog.path, eventLog, func(b []byte) error { _, err := parseEventLog(b); return err })
	ima = a.checkLog(ctx, "IMA list", a.ima.path, ima, func(b []byte) error { _, err := parseIMAList(b); return err })

	b, err := NewBundle(ak.Public, q.Attest, q.Signature, q.PCRs, eventLog, ima)
	if err != nil {
		return nil, fmt.Errorf("tpm attester: %w", err)
	}
	a.log.InfoContext(ctx, "tpm evidence produced", "ak_handle", fmt.Sprintf("%#08x", uint32(ak.Handle)), "pcr_values", len(q.PCRs),
		"qualifying_data_bytes", len(q.ExtraData), "event_log_bytes", len(eventLog), "ima_list_bytes", len(ima))
	return b, nil
}

// selection returns the PCRs to quote: the configured PCRs of each
// configured bank and, when the IMA list is in another allocated bank, the
// configured PCRs it extends in that bank.
func (a *Attester) selection() tpm2.TPMLPCRSelection {
	var sel tpm2.TPMLPCRSelection
	for _, b := range a.banks {
		sel.PCRSelections = append(sel.PCRSelections, tpmquote.BankSelection(b, a.pcrs))
	}
	raw, err := os.ReadFile(a.ima.path) // Attest reads it again after the quote, and reports errors
	if err != nil || len(raw) == 0 {
		return sel
	}
	lines, bank, err := scanIMA(raw)
	if err != nil || slices.Contains(a.banks, bank) || !a.allocated[bank] {
		return sel
	}
	var pcrs []int
	for _, l := range lines {
		if slices.Contains(a.pcrs, l.pcr) && !slices.Contains(pcrs, l.pcr) {
			pcrs = append(pcrs, l.pcr)
		}
	}
	if len(pcrs) > 0 {
		sel.PCRSelections = append(sel.PCRSelections, tpmquote.BankSelection(bank, pcrs))
	}
	return sel
}

// checkLog returns data, or nil (with a warning) when the verifier would
// refuse it.
func (a *Attester) checkLog(ctx context.Context, what, path string, data []byte, parse func([]byte) error) []byte {
	if len(data) == 0 {
		return nil
	}
	var err error
	if len(data) > attestation.MaxEventLogSize {
		err = fmt.Errorf("%d bytes, over the limit of %d", len(data), attestation.MaxEventLogSize)
	} else {
		err = parse(data)
	}
	if err != nil {
		a.log.WarnContext(ctx, "tpm attester: leaving the "+what+" out: the verifier would refuse it", "path", path, "error", err)
		return nil
	}
	return data
}

// Close flushes the attestation key the Attester created and closes the
// TPM device it opened.
func (a *Attester) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	if a.transient && a.ak != nil {
		if _, err := (tpm2.FlushContext{FlushHandle: a.ak.Handle}).Execute(a.tpm); err != nil {
			errs = append(errs, fmt.Errorf("tpm attester: flushing the attestation key: %w", err))
		}
	}
	if a.closer != nil {
		errs = append(errs, a.closer.Close())
	}
	return errors.Join(errs...)
}

// read reads the log. A default log that is missing is no log; one this
// process may not read (the kernel's are root's) is left out with a
// warning. A configured log must be there.
func (l logFile) read(ctx context.Context, what string, log *slog.Logger) ([]byte, error) {
	data, err := os.ReadFile(l.path)
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, fs.ErrNotExist) && !l.explicit:
		return nil, nil
	case errors.Is(err, fs.ErrPermission) && !l.explicit:
		log.WarnContext(ctx, "tpm attester: leaving the "+what+" out: permission denied (run as root to send it)", "path", l.path)
		return nil, nil
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%w: tpm attester: reading the %s %s: permission denied: run as root (the kernel's measurement logs are root's)", attestation.ErrNoTEE, what, l.path)
	}
	return nil, fmt.Errorf("%w: tpm attester: reading the %s: %v", attestation.ErrNoTEE, what, err)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// imaLine is what trimIMA needs of an ASCII IMA list's line: its PCR, its
// template hash and where it ends.
type imaLine struct {
	pcr  int
	hash []byte
	end  int // offset after the line's newline
}

// scanIMA reads the PCR and template hash of each line of an ASCII IMA
// list, whatever its template, and the bank the hashes' size names.
func scanIMA(data []byte) (lines []imaLine, bank tpm2.TPMAlgID, err error) {
	for off := 0; off < len(data); {
		n := len(lines) + 1
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			return nil, 0, fmt.Errorf("ima list line %d does not end with a newline", n)
		}
		f := bytes.SplitN(data[off:off+nl], []byte(" "), 4)
		if len(f) < 4 {
			return nil, 0, fmt.Errorf("ima list line %d: want PCR, template hash, template name and its data", n)
		}
		pcr, err := strconv.Atoi(string(f[0]))
		if err != nil || pcr < 0 || pcr >= numPCRs {
			return nil, 0, fmt.Errorf("ima list line %d: PCR %q", n, f[0])
		}
		th, err := hex.DecodeString(string(f[1]))
		if err != nil {
			return nil, 0, fmt.Errorf("ima list line %d: template hash is not hex", n)
		}
		var b tpm2.TPMAlgID
		for alg, bk := range banks {
			if bk.Hash.Size() == len(th) {
				b = tpm2.TPMAlgID(alg)
			}
		}
		switch {
		case b == 0:
			return nil, 0, fmt.Errorf("ima list line %d: template hash of %d bytes", n, len(th))
		case bank != 0 && b != bank:
			return nil, 0, fmt.Errorf("ima list line %d: template hash of %d bytes where earlier lines had %d", n, len(th), banks[uint16(bank)].Hash.Size())
		}
		bank = b
		off += nl + 1
		lines = append(lines, imaLine{pcr: pcr, hash: th, end: off})
	}
	return lines, bank, nil
}

// trimIMA returns the shortest prefix of the ASCII IMA list raw whose
// replay gives the quoted value (quotedValue: nil for a PCR the quote does
// not cover) of every PCR it extends that the quote covers in its bank,
// and true; or raw and false when no prefix does. A
// list none of whose PCRs the quote covers cannot be checked and is
// returned whole, with true. Its error means the list is malformed.
func trimIMA(raw []byte, quotedValue func(bank tpm2.TPMAlgID, pcr int) []byte) ([]byte, bool, error) {
	if len(raw) == 0 {
		return nil, true, nil
	}
	lines, bank, err := scanIMA(raw)
	if err != nil {
		return nil, false, err
	}
	quoted := map[int][]byte{}
	for _, l := range lines {
		if v := quotedValue(bank, l.pcr); v != nil {
			quoted[l.pcr] = v
		}
	}
	if len(quoted) == 0 {
		return raw, true, nil
	}
	h := banks[uint16(bank)].Hash
	state := map[int][]byte{}
	get := func(pcr int) []byte {
		if v, ok := state[pcr]; ok {
			return v
		}
		return make([]byte, h.Size())
	}
	match := func() bool {
		for pcr, v := range quoted {
			if !bytes.Equal(get(pcr), v) {
				return false
			}
		}
		return true
	}
	if match() {
		return nil, true, nil // nothing in the list was extended (IMA without a TPM)
	}
	for _, l := range lines {
		ext := l.hash
		if allZero(ext) { // a violation: IMA extends all ones
			ext = bytes.Repeat([]byte{0xff}, len(ext))
		}
		d := h.New()
		d.Write(get(l.pcr))
		d.Write(ext)
		state[l.pcr] = d.Sum(nil)
		if quoted[l.pcr] != nil && match() {
			return raw[:l.end], true, nil
		}
	}
	return raw, false, nil
}
