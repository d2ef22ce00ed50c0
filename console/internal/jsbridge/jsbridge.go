//go:build js && wasm

// Package jsbridge is how the console's WebAssembly programs answer the
// page: JSON answers, Promises for work that waits on the network, and
// byte arrays.
package jsbridge

import (
	"encoding/json"
	"syscall/js"
)

// Answer encodes a result, or the problem when it is not empty, as the JSON
// text the page reads: {"ok": true, "result": v} or {"ok": false,
// "error": problem}.
func Answer(v any, problem string) any {
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

// Promise runs f off the JavaScript event loop, which it may block on (a
// fetch), and returns a Promise of its answer.
func Promise(f func() any) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve := args[0]
		go func() {
			resolve.Invoke(f())
			executor.Release()
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}

// IsBytes reports whether v is a Uint8Array.
func IsBytes(v js.Value) bool { return v.InstanceOf(js.Global().Get("Uint8Array")) }

// Bytes copies a Uint8Array into Go.
func Bytes(v js.Value) []byte {
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b
}

// WithBytes is an answer with bytes beside it: {"answer": JSON text,
// "bytes": a Uint8Array, or null when there is a problem or no bytes}.
func WithBytes(b []byte, v any, problem string) any {
	out := map[string]any{"answer": Answer(v, problem), "bytes": nil}
	if problem == "" && b != nil {
		u := js.Global().Get("Uint8Array").New(len(b))
		js.CopyBytesToJS(u, b)
		out["bytes"] = u
	}
	return js.ValueOf(out)
}
