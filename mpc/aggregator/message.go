package aggregator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/kura-cc/kura/mpc/prio"
)

// Limits of the HTTP API (docs/spec/prio.md §4.5).
const (
	// MaxBody bounds the body of an upload or of an aggregation job.
	MaxBody = 1 << 20
	// MaxCollectBody bounds the body of a collection request.
	MaxCollectBody = 4 << 10
	// MaxReportsPerUpload bounds the reports of one upload.
	MaxReportsPerUpload = 100
	// MaxReportsPerJob bounds the reports of one aggregation job.
	MaxReportsPerJob = 1000
)

// Signing contexts of the signed requests (internal/httpsig).
const (
	// AggregateContext names the leader's aggregation jobs.
	AggregateContext = "kura-prio-v1 aggregate"
	// CollectContext names the collector's collection requests.
	CollectContext = "kura-prio-v1 collect"
)

// UploadRequest is the body of POST /v1/prio/tasks/{task}/reports.
type UploadRequest struct {
	Reports []Report `json:"reports"`
}

// Report is one client report as uploaded to the leader: the public
// share, the leader's input share in the clear and the helper's sealed to
// the helper's card (HelperShareInfo).
type Report struct {
	Nonce       []byte `json:"nonce"`
	PublicShare []byte `json:"public_share"`
	LeaderShare []byte `json:"leader_share"`
	HelperShare []byte `json:"helper_share"`
}

// UploadResponse answers an upload whose reports were all accepted.
type UploadResponse struct {
	Accepted int `json:"accepted"`
}

// AggregateRequest is the body of POST /v1/prio/tasks/{task}/aggregate:
// reports the leader has initialised, with its prep share of each.
type AggregateRequest struct {
	Reports []JobReport `json:"reports"`
}

// JobReport is one report of an aggregation job.
type JobReport struct {
	Nonce       []byte `json:"nonce"`
	PublicShare []byte `json:"public_share"`
	HelperShare []byte `json:"helper_share"`
	// LeaderPrepShare is the leader's prio.PrepShare message.
	LeaderPrepShare []byte `json:"leader_prep_share"`
}

// AggregateResponse answers an aggregation job: one result per report, in
// order.
type AggregateResponse struct {
	Results []JobResult `json:"results"`
}

// JobResult is the helper's outcome for one report: the prio.PrepMessage
// that finishes it, or why it was rejected.
type JobResult struct {
	Nonce       []byte `json:"nonce"`
	PrepMessage []byte `json:"prep_message,omitempty"`
	Rejected    string `json:"rejected,omitempty"`
}

// Reasons a helper rejects a report.
const (
	RejectReplay    = "replayed"
	RejectDecrypt   = "helper-share-does-not-open"
	RejectMalformed = "malformed"
	RejectInvalid   = "invalid"
)

// CollectResponse answers a collection: this aggregator's aggregate share
// (a prio.AggregateShare message) sealed to the collector's card
// (AggregateShareInfo), and the number of reports it covers.
type CollectResponse struct {
	TaskID         string `json:"task_id"`
	Aggregator     uint8  `json:"aggregator"`
	Reports        uint64 `json:"reports"`
	AggregateShare []byte `json:"aggregate_share"`
}

// HelperShareInfo is the HPKE info a client seals the helper's input
// share with: it binds the share to its task, nonce and public share, so
// the leader cannot move it to another report.
func HelperShareInfo(task prio.TaskID, nonce prio.Nonce, public []byte) []byte {
	b := append([]byte("kura-prio-v1 helper share\x00"), task[:]...)
	b = append(b, nonce[:]...)
	return append(b, public...)
}

// AggregateShareInfo is the HPKE info an aggregator seals its aggregate
// share to the collector with.
func AggregateShareInfo(task prio.TaskID, aggregator uint8) []byte {
	b := append([]byte("kura-prio-v1 aggregate share\x00"), task[:]...)
	return append(b, aggregator)
}

// decodeJSON decodes exactly one JSON value with known fields only.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON value", ErrMalformed)
	}
	return nil
}

// nonceOf returns b as a report nonce.
func nonceOf(b []byte) (prio.Nonce, error) {
	var n prio.Nonce
	if len(b) != len(n) {
		return n, fmt.Errorf("%w: nonce of %d bytes, want %d", ErrMalformed, len(b), len(n))
	}
	copy(n[:], b)
	return n, nil
}
