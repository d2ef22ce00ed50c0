package intake_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/inference/trust"
	"github.com/kura-cc/kura/party"
)

// TestInferenceBuild: a signed build approval is logged once, with the
// approver, TEE and measurement; an approval signed by another party than
// its card's, or altered after signing, is refused and logs nothing.
func TestInferenceBuild(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id, err := party.Generate("builders", party.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	b := &trust.Build{TEE: "snp", Measurement: strings.Repeat("ab", 48), Version: "2.0.1", Source: "https://example.com/gw@1", ApprovedAt: time.Now().UTC()}
	if err := b.Sign(id); err != nil {
		t.Fatal(err)
	}
	body, _ := b.Marshal()
	raw, err := f.client.Submit(ctx, auditlog.KindInferenceBuild, body)
	if err != nil {
		t.Fatal(err)
	}
	p, err := auditlog.ParseProof(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auditlog.VerifyProof(p, f.key.Verifier()); err != nil {
		t.Fatal(err)
	}
	e, _ := auditlog.ParseEntry(p.Entry)
	digest, _ := b.Digest()
	if e.Kind != auditlog.KindInferenceBuild || e.Party != id.Card().Fingerprint || e.TEE != "snp" || e.Measurement != b.Measurement || e.Subject != digest {
		t.Errorf("entry = %+v", e)
	}
	again, err := f.client.Submit(ctx, auditlog.KindInferenceBuild, body)
	if err != nil {
		t.Fatal(err)
	}
	if p2, err := auditlog.ParseProof(again); err != nil || p2.Index != p.Index || !bytes.Equal(p2.Entry, p.Entry) {
		t.Errorf("second submission: %v; a new entry instead of the first one's proof", err)
	}

	altered := *b
	altered.Measurement = strings.Repeat("cd", 48)
	data, _ := altered.Marshal()
	if _, err := f.client.Submit(ctx, auditlog.KindInferenceBuild, data); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("altered approval: %v, want 400", err)
	}
	if _, err := f.client.Submit(ctx, auditlog.KindInferenceBuild, make([]byte, trust.MaxBuildSize+1)); err == nil || !strings.Contains(err.Error(), "413") {
		t.Errorf("oversized approval: %v, want 413", err)
	}
}
