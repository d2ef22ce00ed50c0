//go:build js && wasm

// Command wasm is kura's offline checks for the browser console, built
// with GOOS=js GOARCH=wasm. It sets globalThis.kura to an object of
// functions, each taking and returning JSON text:
//
//	kura.verifyCollaboration(file) → {"ok": true, "id", "versions",
//	  "manifest_hash", "parties": [<collab.PartyStatus>...]} or
//	  {"ok": false, "error": "..."}
//
// The checks are package collab's, byte for byte the ones kura collab
// status runs.
package main

import (
	"encoding/json"
	"syscall/js"

	"github.com/kura-cc/kura/collab"
)

func main() {
	js.Global().Set("kura", js.ValueOf(map[string]any{
		"verifyCollaboration": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return answer(nil, "verifyCollaboration takes the collaboration file as a string")
			}
			return answer(verifyCollaboration([]byte(args[0].String())))
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
