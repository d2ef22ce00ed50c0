package brokerlog

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/privacy"
	"github.com/kura-cc/kura/store"
)

// Sink records a key broker's release decisions in the log as
// key_release entries. It implements keybroker.AuditSink: Record returns
// only once the entry is durably sequenced, so a release the broker
// acknowledges is in the log (the broker answers after Record returns).
type Sink struct {
	// Log receives the entries.
	Log *auditlog.Log
	// Collaboration, if set, is stamped on every entry (a broker serving
	// one collaboration).
	Collaboration string
}

// Record appends rec as a key_release entry and waits until it is durably
// sequenced. Text fields longer than auditlog.MaxFieldSize are cut (on a rune
// boundary) and control characters replaced, so a decision is always
// logged whatever a client sent. A record that is no release decision (an
// owner-API refusal, store.DecisionAdminRefused) is not logged.
func (s *Sink) Record(ctx context.Context, rec *store.AuditRecord) error {
	if rec.Decision == store.DecisionAdminRefused {
		return nil
	}
	_, err := s.append(ctx, rec)
	return err
}

// append logs rec as a key_release entry and returns its index.
func (s *Sink) append(ctx context.Context, rec *store.AuditRecord) (uint64, error) {
	e := &auditlog.Entry{
		Kind: auditlog.KindKeyRelease, Time: rec.Time, Collaboration: clean(s.Collaboration),
		Decision: rec.Decision, Reason: clean(rec.Reason), Resource: clean(rec.Resource),
		TokenDigest: clean(rec.TokenDigest), PolicyID: clean(rec.PolicyID), Requester: clean(rec.Requester),
		TEE: clean(rec.TEE), Measurement: clean(rec.Measurement), BrokerSeq: rec.Seq,
	}
	// A decision on a clean-room run's request names the run; its own
	// collaboration wins over the one stamped on the sink.
	if rec.Collaboration != "" {
		e.Collaboration = clean(rec.Collaboration)
	}
	e.Run, e.Analysis = clean(rec.RunID), clean(rec.Analysis)
	if eps, err := privacy.ParseEpsilon(rec.Epsilon); err == nil && eps.Sign() > 0 {
		e.Epsilon = rec.Epsilon // the ε a run of a private analysis spends
	}
	if isHexSHA256(rec.ManifestHash) {
		e.Manifest = "sha256:" + rec.ManifestHash
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Resource == "" {
		e.Resource = "-" // a refusal before the path was parsed
	}
	i, err := s.Log.Append(ctx, e)
	if err != nil {
		return 0, fmt.Errorf("transparency log: %w", err)
	}
	return i, nil
}

// isHexSHA256 reports whether s is a SHA-256 in lowercase hex, the form a
// run context's manifest hash takes.
func isHexSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// clean makes s a valid entry text field.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
	for len(s) > auditlog.MaxFieldSize {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}
