//go:build js && wasm

// Command vault is the web console's time-lock vault, built with GOOS=js
// GOARCH=wasm beside the console's checks (console/wasm) and loaded by the
// page only when the vault is used: drand's client, which tlock needs, is
// most of its size. It sets globalThis.kuraVault to
//
//	sealTimelock(bytes, until, chain) → a Promise of {"answer": {"ok":
//	  true, "result": {"registration", "round", "release_time",
//	  "sealed_sha256", "chain_hash"}}, "bytes": <the sealed file>}
//	openTimelock(bytes, chain) → a Promise of {"answer": {"ok": true,
//	  "result": {"round", "release_time", "chain_hash"}}, "bytes": <the
//	  document>}, or "too_early" with the release time and no bytes
//
// and {"ok": false, "error": "..."} answers when they fail. They are kura
// timelock seal and open, in the page: chain is {"hash", "url", "dev"}
// (empty: drand's quicknet), the beacon fetched by the browser; bytes are
// Uint8Arrays. Files sealed to recipients are opened with kura timelock
// open, which has the recipient's identity; the page seals to nobody.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"syscall/js"
	"time"

	"github.com/kura-cc/kura/console/internal/jsbridge"
	"github.com/kura-cc/kura/timelock"
)

func main() {
	js.Global().Set("kuraVault", js.ValueOf(map[string]any{
		"sealTimelock": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 3 || !jsbridge.IsBytes(args[0]) || args[1].Type() != js.TypeString || args[2].Type() != js.TypeString {
				return jsbridge.Answer(nil, "sealTimelock takes the document (a Uint8Array), the release time (RFC 3339) and the chain (JSON)")
			}
			doc, until, chain := jsbridge.Bytes(args[0]), args[1].String(), args[2].String()
			return jsbridge.Promise(func() any { return jsbridge.WithBytes(sealTimelock(doc, until, chain)) })
		}),
		"openTimelock": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 2 || !jsbridge.IsBytes(args[0]) || args[1].Type() != js.TypeString {
				return jsbridge.Answer(nil, "openTimelock takes the sealed file (a Uint8Array) and the chain (JSON)")
			}
			sealed, chain := jsbridge.Bytes(args[0]), args[1].String()
			return jsbridge.Promise(func() any { return jsbridge.WithBytes(openTimelock(sealed, chain)) })
		}),
	}))
	select {}
}

// maxVault bounds a document sealed or opened in the page.
const maxVault = 64 << 20

// chainSpec is the chain the page names: empty for drand's quicknet.
type chainSpec struct {
	Hash string `json:"hash"`
	URL  string `json:"url"`
	Dev  bool   `json:"dev"`
}

// chainOf returns the chain and the network that reaches it, by the
// browser's fetch.
func chainOf(spec string) (timelock.Chain, timelock.Network, bool, error) {
	var c chainSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		return timelock.Chain{}, nil, false, fmt.Errorf("the chain: %w", err)
	}
	chain := timelock.Quicknet()
	if c.Hash != "" || c.URL != "" {
		if c.Hash == "" || c.URL == "" {
			return timelock.Chain{}, nil, false, errors.New("another chain than quicknet needs both its hash and its URL")
		}
		chain = timelock.Chain{Hash: c.Hash, URLs: []string{c.URL}}
	}
	return chain, timelock.NewHTTPNetwork(chain, http.DefaultClient, nil), c.Dev, nil
}

// sealedDoc is sealTimelock's answer.
type sealedDoc struct {
	Registration string    `json:"registration"`
	Round        uint64    `json:"round"`
	ReleaseTime  time.Time `json:"release_time"`
	SealedSHA256 string    `json:"sealed_sha256"`
	ChainHash    string    `json:"chain_hash"`
}

func sealTimelock(doc []byte, until, spec string) ([]byte, any, string) {
	if len(doc) > maxVault {
		return nil, nil, fmt.Sprintf("the document is larger than %d MiB", maxVault>>20)
	}
	t, err := time.Parse(time.RFC3339, until)
	if err != nil {
		return nil, nil, fmt.Sprintf("the release time: %v", err)
	}
	chain, network, dev, err := chainOf(spec)
	if err != nil {
		return nil, nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	reg, err := timelock.Seal(ctx, &out, bytes.NewReader(doc), timelock.SealOptions{Until: t, Chain: chain, Network: network, AllowInsecure: dev})
	if err != nil {
		return nil, nil, err.Error()
	}
	text, err := reg.Marshal()
	if err != nil {
		return nil, nil, err.Error()
	}
	return out.Bytes(), &sealedDoc{Registration: string(text), Round: reg.Round, ReleaseTime: reg.ReleaseTime,
		SealedSHA256: reg.SealedSHA256, ChainHash: reg.ChainHash}, ""
}

// openedDoc is openTimelock's answer.
type openedDoc struct {
	Round       uint64    `json:"round"`
	ReleaseTime time.Time `json:"release_time"`
	ChainHash   string    `json:"chain_hash"`
	// TooEarly is set, with no document, when the round has not come.
	TooEarly bool `json:"too_early,omitempty"`
}

func openTimelock(sealed []byte, spec string) ([]byte, any, string) {
	if len(sealed) > maxVault+(1<<20) {
		return nil, nil, fmt.Sprintf("the sealed file is larger than %d MiB", maxVault>>20)
	}
	chain, network, dev, err := chainOf(spec)
	if err != nil {
		return nil, nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	info, err := timelock.Open(ctx, &out, bytes.NewReader(sealed), timelock.OpenOptions{Chain: chain, Network: network, AllowInsecure: dev})
	var early *timelock.TooEarlyError
	if errors.As(err, &early) && info != nil {
		return nil, &openedDoc{Round: info.Round, ReleaseTime: early.ReleaseTime, ChainHash: info.ChainHash, TooEarly: true}, ""
	}
	if err != nil {
		return nil, nil, err.Error()
	}
	return out.Bytes(), &openedDoc{Round: info.Round, ReleaseTime: info.ReleaseTime, ChainHash: info.ChainHash}, ""
}
