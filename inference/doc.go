// Package inference is the wire protocol of kura's confidential-inference
// gateway (docs/spec/inference.md): end-to-end encryption of HTTP bodies
// between a client-side proxy and a gateway that runs inside an attested
// TEE next to an OpenAI-compatible model server (vLLM, llama.cpp, Ollama).
//
// The gateway (Gateway, an http.Handler) holds HPKE keys (KeySet: X25519
// and the ML-KEM-768 + X25519 hybrid, rotated) and serves their RFC 9458
// key configurations at /.well-known/ohttp-gateway. The client (Transport,
// an http.RoundTripper) fetches them, has Verify check that an attested
// TEE holds them (package inference/trust), then seals each request: the
// inner headers it keeps (content-type, accept) and the body travel as
// AEAD frames under an HPKE context; only the method, the path and the
// framing are visible. The gateway opens the request, forwards it to the
// model server, and seals the answer under keys derived from the same
// context (as RFC 9458 §4.4 does), one frame per read from the model
// server (reads that arrive while a frame is sealed share the next),
// flushed at once, so a server-sent-event stream reaches the
// client token by token; the Transport's response Body opens the frames as
// they arrive.
//
// # Security model
//
// What the encryption protects: the contents of requests and responses
// (prompts, answers, every streamed token, embeddings) and their inner
// headers and status, from the network, from any proxy or load balancer
// on the way, from the host and cloud operator outside the TEE, and from
// the client's own LAN beyond the client-side proxy. Frames are
// authenticated and ordered by the HPKE context's nonce counter, and the
// final frame is marked in its associated data, so a modified, reordered,
// replayed-from-elsewhere or truncated frame, and data after the final
// one, are errors: a reader never returns silently truncated data. Each
// response is bound to its request (its keys derive from the request's
// HPKE context), and the gateway refuses a request whose encapsulated key
// it has already answered under the same key (ErrReplay). There is no
// plaintext mode on either side: the gateway refuses what is not sealed
// (ErrNotEncrypted), the Transport refuses an answer that is not sealed.
// The gateway logs only method, path, visible status, sizes and durations;
// it never logs content, inner headers or the inner status, and it clears
// plaintext buffers it holds as []byte after use (strings made by
// encoding/json and buffers inside net/http are outside its reach).
//
// What it does not protect: which paths are called and with which method
// and query (the path names the API, such as /v1/chat/completions), the
// sizes of requests and responses and the timing of every frame (a stream
// shows how many tokens came and when), and who talks to the gateway. It
// does not make the gateway honest: a gateway that is not the approved
// build in a genuine TEE could read everything. That is what attestation
// is for: the Transport sends nothing until Verify has checked the
// gateway's attestation against the exact key configurations it served,
// and checks again when Verify's answer expires, after MaxAge, and after
// a key rotation. The model server sees plaintext: it must run inside the
// same TEE (on its loopback, or a GPU in confidential-computing mode).
package inference
