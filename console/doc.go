// Package console is the groundwork of kura's web console (issue 19):
// the console verifies collaborations and results, and signs approvals, in
// the user's browser with kura's own Go checks compiled to WebAssembly
// (console/wasm), so that no party's key or result plaintext ever reaches
// a server. This package holds that build's test harness; the pages and
// their serving come next.
package console
