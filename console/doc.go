// Package console is kura's web console, served by `kura serve` at
// /console/ (issue 19). Its pages are static files embedded in the binary
// (web/); they read the same HTTP APIs the CLI uses and run kura's own Go
// checks in the browser, compiled to WebAssembly (console/wasm, built into
// dist/ by `go generate ./console`), so that no party's key and no result's
// plaintext ever reaches a server: a collaboration is fetched from the
// coordinator and verified, approval by approval, in the page.
//
// The console speaks English and Japanese (web/i18n.js holds every
// string), and is usable by keyboard alone with labelled controls.
package console
