package keybroker

import (
	"context"
	"testing"

	"github.com/kura-cc/kura/store"
)

func BenchmarkReleaseParts(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, fixtureOpts{dev: true})
	f.admin.Put(ctx, secretPath, secret, nil, "")
	c := &Client{BaseURL: f.srv.URL, HTTP: f.srv.Client()}
	s, _ := c.Attest(ctx, simAttester(b, 1), nil)
	a, err := f.broker.authenticate(context.Background(), []byte(s.Token))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("token", func(b *testing.B) {
		for b.Loop() {
			f.broker.authenticate(context.Background(), []byte(s.Token))
		}
	})
	b.Run("jwe", func(b *testing.B) {
		for b.Loop() {
			a.to.encrypt(secret)
		}
	})
	req, _ := ParsePath(secretPath)
	b.Run("policy", func(b *testing.B) {
		for b.Loop() {
			f.broker.policies.evaluate(ctx, "builtin", DefaultReleasePolicy, &PolicyInput{Token: a.View, Request: req, Resource: &ResourceView{Version: 1}, DevMode: true}, nil)
		}
	})
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			f.store.GetResource(ctx, secretPath)
		}
	})
	b.Run("policylookup", func(b *testing.B) {
		for b.Loop() {
			f.broker.policyFor(ctx, req)
		}
	})
	r, _ := f.store.GetResource(ctx, secretPath)
	b.Run("unseal", func(b *testing.B) {
		for b.Loop() {
			f.broker.unseal(ctx, r)
		}
	})
	b.Run("audit", func(b *testing.B) {
		for b.Loop() {
			f.store.AppendAudit(ctx, &store.AuditRecord{Decision: "released", Resource: secretPath})
		}
	})
	b.Run("auditparallel", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				f.store.AppendAudit(ctx, &store.AuditRecord{Decision: "released", Resource: secretPath})
			}
		})
	})
}
