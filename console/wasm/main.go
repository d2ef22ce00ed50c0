//go:build js && wasm

// Command wasm is kura's offline checks for the browser console, built
// with GOOS=js GOARCH=wasm. It sets globalThis.kura to an object of
// functions, each taking and returning JSON text:
//
//	kura.verifyCollaboration(file) → {"ok": true, "result": {"id",
//	  "versions", "manifest_hash", "parties": [<collab.PartyStatus>...],
//	  "manifest": <the current collab.Manifest>}}
//	kura.loadIdentity(identityFile) → {"ok": true, "result": {"name",
//	  "fingerprint"}}
//	kura.forgetIdentity() → {"ok": true}
//	kura.approve(file) → {"ok": true, "result": {"file", "path",
//	  "authorization"}}
//	kura.openResult(bundle, receipt, devMode) → a Promise of {"ok": true,
//	  "result": {"collaboration", "analysis", "run", "checks", "insecure",
//	  "tee", "measurement", "status", "verifier", "columns", "rows",
//	  "suppressed_rows", "receipt": {"run", "outcome", "destroyed_at",
//	  "destroyed", "checks", "insecure"}, "receipt_error"}}
//	kura.history(file) → {"ok": true, "result": [{"version", "hash",
//	  "description", "must_reapprove": [<collab.PartyChange>...],
//	  "diff": [{"op": " "|"+"|"-"|"…", "text"}...]}...]}, newest first
//	kura.browseLog(logKey, last) → a Promise of {"ok": true, "result":
//	  {"origin", "size", "root", "entries": [{"index", "kind", "time",
//	  "collaboration", "run", "subject", "party", "version", "decision",
//	  "resource", "tee"}...]}}
//
// and {"ok": false, "error": "..."} when they fail. The checks are package
// collab's, byte for byte the ones kura collab status runs. loadIdentity
// keeps the party's identity (the file the user opened) in this
// program's memory, in the page, and nowhere else; approve signs the
// current version with it as kura collab approve does, and returns the
// new collaboration file with the request signature (internal/httpsig)
// for PUT path, which the page sends to the coordinator. Only the file and
// the signature leave: neither holds a key. openResult verifies a result
// bundle exactly as kura result open does (result.VerifyBundle, trusting
// the manifest's verifiers because the signed-in party approved them,
// their JWKS fetched by the browser; devMode accepts the INSECURE
// simulated TEE), decrypts the party's copy in the page, and gives each
// value as kura result open --format csv writes it; given the run's
// deletion receipt too, it checks it as kura receipt verify does, against
// that verified bundle. browseLog reads the transparency log this page's
// server serves at /log/, checks its checkpoint's signature with the log
// key the user gives, and fetches the last entries each with its
// inclusion proof in that checkpoint, verified, as kura audit does. The
// time-lock vault is a program of its own (console/wasm/vault), which the
// page loads only when it is used: drand's client is most of its size.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall/js"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/kura-cc/kura/auditlog"
	"github.com/kura-cc/kura/collab"
	"github.com/kura-cc/kura/console/internal/jsbridge"
	"github.com/kura-cc/kura/internal/httpsig"
	"github.com/kura-cc/kura/internal/linediff"
	"github.com/kura-cc/kura/party"
	"github.com/kura-cc/kura/result"
)

// identity is the party the user signed in as, or nil.
var identity *party.Identity

func main() {
	js.Global().Set("kura", js.ValueOf(map[string]any{
		"verifyCollaboration": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return jsbridge.Answer(nil, "verifyCollaboration takes the collaboration file as a string")
			}
			return jsbridge.Answer(verifyCollaboration([]byte(args[0].String())))
		}),
		"loadIdentity": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return jsbridge.Answer(nil, "loadIdentity takes the identity file as a string")
			}
			return jsbridge.Answer(loadIdentity([]byte(args[0].String())))
		}),
		"forgetIdentity": js.FuncOf(func(js.Value, []js.Value) any {
			identity = nil
			return jsbridge.Answer(struct{}{}, "")
		}),
		"approve": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return jsbridge.Answer(nil, "approve takes the collaboration file as a string")
			}
			return jsbridge.Answer(approve([]byte(args[0].String())))
		}),
		"openResult": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 3 || args[0].Type() != js.TypeString || args[1].Type() != js.TypeString || args[2].Type() != js.TypeBoolean {
				return jsbridge.Answer(nil, "openResult takes the result bundle and its deletion receipt (or \"\") as strings and whether to accept the simulated TEE")
			}
			file, receipt, dev := []byte(args[0].String()), []byte(args[1].String()), args[2].Bool()
			return jsbridge.Promise(func() any { return jsbridge.Answer(openResult(file, receipt, dev)) })
		}),
		"history": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 1 || args[0].Type() != js.TypeString {
				return jsbridge.Answer(nil, "history takes the collaboration file as a string")
			}
			return jsbridge.Answer(history([]byte(args[0].String())))
		}),
		"browseLog": js.FuncOf(func(_ js.Value, args []js.Value) any {
			if len(args) != 2 || args[0].Type() != js.TypeString || args[1].Type() != js.TypeNumber {
				return jsbridge.Answer(nil, "browseLog takes the log's verifier key and how many entries to show")
			}
			key, last := args[0].String(), args[1].Int()
			base := js.Global().Get("location").Get("origin").String() + "/log/"
			return jsbridge.Promise(func() any { return jsbridge.Answer(browseLog(base, key, last)) })
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
	// Manifest is the current version, verified with the rest.
	Manifest *collab.Manifest `json:"manifest"`
}

func verifyCollaboration(file []byte) (*collaborationReport, string) {
	c, err := collab.ParseCollaboration(file)
	if err != nil {
		return nil, err.Error()
	}
	if err := c.Verify(); err != nil {
		return nil, err.Error()
	}
	return &collaborationReport{ID: c.ID, Versions: len(c.Versions), ManifestHash: c.Current().Hash(), Parties: c.Status(), Manifest: c.Current()}, ""
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

// opened is openResult's answer.
type opened struct {
	Collaboration string   `json:"collaboration"`
	Analysis      string   `json:"analysis"`
	Run           string   `json:"run"`
	Checks        []string `json:"checks"`
	Insecure      bool     `json:"insecure"`
	// The attested worker: its TEE, measurement, the verifier's
	// appraisal status and which verifier signed the token.
	TEE            string     `json:"tee"`
	Measurement    string     `json:"measurement"`
	Status         string     `json:"status"`
	Verifier       string     `json:"verifier"`
	Columns        []string   `json:"columns"`
	Rows           [][]string `json:"rows"`
	SuppressedRows int        `json:"suppressed_rows"`
	// Receipt is the run's deletion receipt, verified, or ReceiptError
	// says why it does not verify (both empty without a receipt).
	Receipt      *receiptReport `json:"receipt,omitempty"`
	ReceiptError string         `json:"receipt_error,omitempty"`
}

// maxJWKS bounds a verifier's key set.
const maxJWKS = 1 << 20

func openResult(file, receipt []byte, dev bool) (*opened, string) {
	if identity == nil {
		return nil, "open your identity file first: the result is encrypted to it"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := result.ParseFile(file)
	if err != nil {
		return nil, err.Error()
	}
	v, err := result.VerifyBundle(ctx, f, trust(dev))
	if err != nil {
		return nil, err.Error()
	}
	plain, err := v.Open(identity)
	if err != nil {
		return nil, err.Error()
	}
	var r struct {
		Columns []struct {
			Name string `json:"name"`
		} `json:"columns"`
		Rows           [][]any `json:"rows"`
		SuppressedRows int     `json:"suppressed_rows"`
	}
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Sprintf("decode the result: %v", err)
	}
	out := &opened{Collaboration: v.Run.Collaboration, Analysis: v.Run.Analysis, Run: v.Run.RunID, Checks: v.Checks,
		Insecure: v.Insecure, TEE: v.TEE, Measurement: v.Measurement, Status: v.Status, Verifier: v.Verifier,
		Columns: []string{}, Rows: [][]string{}, SuppressedRows: r.SuppressedRows}
	for _, c := range r.Columns {
		out.Columns = append(out.Columns, c.Name)
	}
	for _, row := range r.Rows {
		cells := make([]string, len(row))
		for i, x := range row {
			if cells[i], err = result.Cell(x); err != nil {
				return nil, err.Error()
			}
		}
		out.Rows = append(out.Rows, cells)
	}
	if len(receipt) > 0 {
		out.Receipt, err = verifyReceipt(ctx, receipt, v, dev)
		if err != nil {
			out.ReceiptError = err.Error()
		}
	}
	return out, ""
}

// trust is what the signed-in party trusts: the verifiers of a manifest
// version it approved, their keys fetched by the browser.
func trust(dev bool) result.Trust {
	return result.Trust{Party: ed25519.PublicKey(identity.Card().SigningKey), DevMode: dev, FetchJWKS: fetchJWKS}
}

// receiptReport is what verifyReceipt established.
type receiptReport struct {
	Run         string             `json:"run"`
	Outcome     string             `json:"outcome"`
	DestroyedAt time.Time          `json:"destroyed_at"`
	Destroyed   []result.Destroyed `json:"destroyed"`
	Checks      []string           `json:"checks"`
	Insecure    bool               `json:"insecure"`
}

// verifyReceipt checks a run's deletion receipt against its verified
// result bundle.
func verifyReceipt(ctx context.Context, receipt []byte, b *result.VerifiedBundle, dev bool) (*receiptReport, error) {
	rf, err := result.ParseFile(receipt)
	if err != nil {
		return nil, err
	}
	v, err := result.VerifyReceipt(ctx, rf, b, trust(dev))
	if err != nil {
		return nil, err
	}
	return &receiptReport{Run: v.Run.RunID, Outcome: v.Receipt.Outcome, DestroyedAt: v.Receipt.DestroyedAt,
		Destroyed: v.Receipt.Destroyed, Checks: v.Checks, Insecure: v.Insecure}, nil
}

// version is one manifest version in history's answer.
type version struct {
	Version       int                  `json:"version"`
	Hash          string               `json:"hash"`
	Description   string               `json:"description"`
	MustReapprove []collab.PartyChange `json:"must_reapprove"`
	Diff          []linediff.Line      `json:"diff"`
}

// history verifies the collaboration and returns its versions, newest
// first, each with the parties it made approve again and the lines of its
// manifest (indented JSON) that differ from the version before.
func history(file []byte) ([]version, string) {
	c, err := collab.ParseCollaboration(file)
	if err == nil {
		err = c.Verify()
	}
	if err != nil {
		return nil, err.Error()
	}
	out := []version{}
	var prev []string
	for i, m := range c.Versions {
		text, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return nil, err.Error()
		}
		lines := strings.Split(string(text), "\n")
		v := version{Version: i + 1, Hash: m.Hash(), Description: m.Description, MustReapprove: []collab.PartyChange{}, Diff: []linediff.Line{}}
		if i > 0 {
			if v.MustReapprove, err = c.VersionChanges(i + 1); err != nil {
				return nil, err.Error()
			}
			v.Diff = linediff.Diff(prev, lines, 3)
		}
		prev = lines
		out = append([]version{v}, out...)
	}
	return out, ""
}

// logView is browseLog's answer.
type logView struct {
	Origin  string     `json:"origin"`
	Size    uint64     `json:"size"`
	Root    string     `json:"root"`
	Entries []logEntry `json:"entries"`
}

// logEntry is one entry of the log, its inclusion proof verified.
type logEntry struct {
	Index         uint64    `json:"index"`
	Kind          string    `json:"kind"`
	Time          time.Time `json:"time"`
	Collaboration string    `json:"collaboration,omitempty"`
	Run           string    `json:"run,omitempty"`
	Subject       string    `json:"subject,omitempty"`
	Party         string    `json:"party,omitempty"`
	Version       uint64    `json:"version,omitempty"`
	// Decision, Resource and TEE of a key release.
	Decision string `json:"decision,omitempty"`
	Resource string `json:"resource,omitempty"`
	TEE      string `json:"tee,omitempty"`
}

// maxBrowsed bounds the entries browseLog proves at once.
const maxBrowsed = 200

func browseLog(base, keyText string, last int) (*logView, string) {
	v, err := auditlog.ParseVerifierKey(keyText)
	if err != nil {
		return nil, err.Error()
	}
	r, err := auditlog.NewReader(base, v, http.DefaultClient)
	if err != nil {
		return nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, cp, err := r.Checkpoint(ctx)
	if err != nil {
		return nil, err.Error()
	}
	out := &logView{Origin: cp.Origin, Size: cp.Size, Root: hex.EncodeToString(cp.Hash), Entries: []logEntry{}}
	for i := cp.Size; i > 0 && len(out.Entries) < min(last, maxBrowsed); i-- {
		p, err := r.Prove(ctx, i-1, raw, cp)
		if err != nil {
			return nil, fmt.Sprintf("entry %d: %v", i-1, err)
		}
		e, err := auditlog.ParseEntry(p.Entry)
		if err != nil {
			return nil, fmt.Sprintf("entry %d: %v", i-1, err)
		}
		out.Entries = append(out.Entries, logEntry{Index: p.Index, Kind: string(e.Kind), Time: e.Time, Collaboration: e.Collaboration,
			Run: e.Run, Subject: e.Subject, Party: e.Party, Version: e.Version, Decision: e.Decision, Resource: e.Resource, TEE: e.TEE})
	}
	return out, ""
}

// fetchJWKS fetches a verifier's keys with the browser's fetch.
func fetchJWKS(ctx context.Context, u string) (jwk.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", u, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxJWKS))
	if err != nil {
		return nil, err
	}
	return jwk.Parse(body)
}
