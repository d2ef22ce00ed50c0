//go:build js && wasm

// Command wasm is kura's offline checks for the browser console, built
// with GOOS=js GOARCH=wasm. It sets globalThis.kura to an object of
// functions, each taking and returning JSON text:
//
//	kura.verifyCollaboration(file) → {"ok": true, "result": {"id",
//	  "versions", "manifest_hash", "parties": [<collab.PartyStatus>...]}}
//	kura.loadIdentity(identityFile) → {"ok": true, "result": {"name",
//	  "fingerprint"}}
//	kura.forgetIdentity() → {"ok": true}
//	kura.approve(file) → {"ok": true, "result": {"file", "path",
//	  "authorization"}}
//
// and {"ok": false, "error": "..."} when they fail. The checks are package
// collab's, byte for byte the ones kura collab status runs. loadIdentity
// keeps the party's identity (the file the user opened) in this
// program's memory, in the page, and nowhere else; approve signs the
// current version with it as kura collab approve does, and returns the
// new collaboration file with the request signature (internal/httpsig)
// for PUT path, which the page sends to the coordinator. Only the file and
// the signature leave: neither holds a key.
package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"syscall/js"
	"time"

	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/party"
)

// identity is the party the user signed in as, or nil.
var identity *party.Identity

func main() {
	js.Global().Set("kura", js.ValueOf(map[string]any{
		"verifyCollaboration": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return answer(nil, "verifyCollaboration takes the collaboration file as a string")
			}
			return answer(verifyCollaboration([]byte(args[0].String())))
		}),
		"loadIdentity": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return answer(nil, "loadIdentity takes the identity file as a string")
			}
			return answer(loadIdentity([]byte(args[0].String())))
		}),
		"forgetIdentity": js.FuncOf(func(js.Value, []js.Value) any {
			identity = nil
			return answer(struct{}{}, "")
		}),
		"approve": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return answer(nil, "approve takes the collaboration file as a string")
			}
			return answer(approve([]byte(args[0].String())))
		}),
	}))
	select {}
}

// collaborationReport is verifyCollaboration's answer.
type collaborationReport struct {
	ID           string               `json:"id"`
	Versions     int                  `json:"versions"`
	ManifestHash string               `json:"manifest_hash"`
	Parties      []collab.PartyStatus `json:"parties"`
}

func verifyCollaboration(file []byte) (*collaborationReport, string) {
	c, err := collab.ParseCollaboration(file)
	if err != nil {
		return nil, err.Error()
	}
	if err := c.Verify(); err != nil {
		return nil, err.Error()
	}
	return &collaborationReport{ID: c.ID, Versions: len(c.Versions), ManifestHash: c.Current().Hash(), Parties: c.Status()}, ""
}

// signedIn is loadIdentity's answer.
type signedIn struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

func loadIdentity(file []byte) (*signedIn, string) {
	defer clear(file)
	id, err := party.ParseIdentity(file)
	if err != nil {
		return nil, err.Error()
	}
	identity = id
	return &signedIn{Name: id.Name(), Fingerprint: id.Card().Fingerprint}, ""
}

// approval is approve's answer: the collaboration file with the approval,
// and the signed request that pushes it.
type approval struct {
	File          string `json:"file"`
	Path          string `json:"path"`
	Authorization string `json:"authorization"`
}

func approve(file []byte) (*approval, string) {
	if identity == nil {
		return nil, "open your identity file first"
	}
	c, err := collab.ParseCollaboration(file)
	if err == nil {
		err = c.Verify()
	}
	if err != nil {
		return nil, err.Error()
	}
	a, err := c.Approve(identity, time.Now())
	if err == nil {
		err = c.AddApproval(a)
	}
	if err != nil {
		return nil, err.Error()
	}
	out, err := c.Marshal()
	if err != nil {
		return nil, err.Error()
	}
	path := "/v1/collaborations/" + url.PathEscape(c.ID)
	req, err := http.NewRequest(http.MethodPut, path, nil)
	if err != nil {
		return nil, err.Error()
	}
	httpsig.Sign(req, out, collab.PushSigningContext, identity.Card().Fingerprint, identity.Sign, time.Now())
	return &approval{File: string(out), Path: path, Authorization: req.Header.Get("Authorization")}, ""
}

// answer encodes a result or an error as the JSON text the page reads.
func answer(v any, problem string) any {
	out := map[string]any{"ok": problem == ""}
	if problem != "" {
		out["error"] = problem
	} else {
		out["result"] = v
	}
	b, err := json.Marshal(out)
	if err != nil {
		return `{"ok":false,"error":"encoding the answer failed"}`
	}
	return string(b)
}
