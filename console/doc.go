// Package console is kura's web console, served by `kura serve` at
// /console/ with the coordinator. Its pages are static files embedded in
// the binary (web/); they read the same HTTP APIs the CLI uses and run
// kura's own Go checks in the browser, compiled to WebAssembly
// (console/wasm, built into dist/ by `go generate ./console`), so that no
// party's key and no result's plaintext ever reaches a server: a
// collaboration is verified approval by approval in the page, approvals
// are signed there, results are verified and decrypted there, the log's
// proofs are checked there and time-locked documents are sealed and opened
// there. docs/console.md lists what each page fetches and verifies.
//
// The console speaks English and Japanese (web/i18n.js holds every
// string), and is usable by keyboard alone with labelled controls.
package console
