package snp

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/verify/trust"
)

// productRoots holds AMD's certificates for one product line, as embedded in
// go-sev-guest: the root (ARK) and the two signing keys it certifies.
type productRoots struct {
	line string
	ark  *x509.Certificate
	ask  *x509.Certificate // signs VCEKs
	asvk *x509.Certificate // signs VLEKs
	// sev is the same chain as go-sev-guest's root of trust. Its CRL field
	// caches the product line's revocation list for this Verifier.
	sev *trust.AMDRootCerts
}

// loadRoots returns the embedded AMD roots of every product line
// go-sev-guest knows. The VCEK chains come parsed from go-sev-guest; the
// VLEK chains, which go-sev-guest embeds but does not parse, are parsed here
// and must share the ARK of the VCEK chain. Each embedded ASK and ASVK must
// be issued and signed by its ARK: checked here once, so that verifying
// evidence checks only the endorsement key's signature by them.
func loadRoots() (map[string]*productRoots, error) {
	vlekChains := map[string][]byte{
		"Milan": trust.AskArkMilanVlekBytes,
		"Genoa": trust.AskArkGenoaVlekBytes,
		"Turin": trust.AskArkTurinVlekBytes,
	}
	roots := make(map[string]*productRoots, len(vlekChains))
	for line, vlekChain := range vlekChains {
		def, err := trust.GetDefaultRootCerts(line)
		if err != nil {
			return nil, fmt.Errorf("embedded AMD roots: %v", err)
		}
		pc := def.ProductCerts
		if pc == nil || pc.Ark == nil || pc.Ask == nil {
			return nil, fmt.Errorf("embedded AMD roots: %s chain is incomplete", line)
		}
		// The embedded Turin VLEK chain ends in a stray CRLF that
		// kds.ParseProductCertChain refuses.
		asvkDER, arkDER, err := kds.ParseProductCertChain(bytes.TrimSpace(vlekChain))
		if err != nil {
			return nil, fmt.Errorf("embedded AMD roots: %s VLEK chain: %v", line, err)
		}
		if !bytes.Equal(arkDER, pc.Ark.Raw) {
			return nil, fmt.Errorf("embedded AMD roots: %s VLEK chain has a different ARK", line)
		}
		asvk, err := x509.ParseCertificate(asvkDER)
		if err != nil {
			return nil, fmt.Errorf("embedded AMD roots: %s ASVK: %v", line, err)
		}
		for _, ica := range []*x509.Certificate{pc.Ask, asvk} {
			if !bytes.Equal(ica.RawIssuer, pc.Ark.RawSubject) {
				return nil, fmt.Errorf("embedded AMD roots: %s: %q is not issued by %q", line, ica.Subject.CommonName, pc.Ark.Subject.CommonName)
			}
			if err := ica.CheckSignatureFrom(pc.Ark); err != nil {
				return nil, fmt.Errorf("embedded AMD roots: %s: %q is not signed by %q: %v", line, ica.Subject.CommonName, pc.Ark.Subject.CommonName, err)
			}
		}
		roots[line] = &productRoots{
			line: line,
			ark:  pc.Ark,
			ask:  pc.Ask,
			asvk: asvk,
			sev: &trust.AMDRootCerts{
				Product:      line, // still read by parts of go-sev-guest
				ProductLine:  line,
				ProductCerts: &trust.ProductCerts{Ark: pc.Ark, Ask: pc.Ask, Asvk: asvk},
			},
		}
	}
	return roots, nil
}

// maxCachedChains bounds the chain cache. A fleet has one VCEK per chip and
// TCB, so this covers a thousand machines before anything is evicted.
const maxCachedChains = 1024

// chain is a verified endorsement key certificate with what verification
// learnt about it.
type chain struct {
	line      string            // product line whose root verified it
	roots     *productRoots     // the roots that verified it
	ek        *x509.Certificate // VCEK or VLEK
	ica       *x509.Certificate // the ASK or ASVK that signed ek
	ark       *x509.Certificate // AMD's root for line
	exts      *kds.Extensions   // ek's KDS extensions (TCB, HWID)
	notBefore time.Time         // the latest NotBefore in the chain
	notAfter  time.Time         // the earliest NotAfter in the chain
	inBundle  int               // how many certificates the evidence carried
}

func (c *chain) validAt(t time.Time) bool {
	return !t.Before(c.notBefore) && !t.After(c.notAfter)
}

// chainKey is the SHA-256 of everything the verification of a chain
// depends on besides the Verifier's roots and the time: the signer kind,
// the product line the report names ("" for version 2 reports), the
// bundle's certificate bytes exactly as given, and the endorsement key
// fetched through the Getter when the bundle lacked it (empty otherwise).
// Keying by the bytes as given, before parsing them, lets a cache hit skip
// parsing the certificates as well as checking them.
type chainKey [sha256.Size]byte

func newChainKey(signer abi.ReportSigner, line string, certs, fetched []byte) chainKey {
	h := sha256.New()
	h.Write([]byte{byte(signer)})
	var n [4]byte
	for _, b := range [][]byte{[]byte(line), certs, fetched} {
		binary.BigEndian.PutUint32(n[:], uint32(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var k chainKey
	h.Sum(k[:0])
	return k
}

// chainCache remembers chains that verified, so that repeated evidence from
// the same machine costs one report signature check.
type chainCache struct {
	mu sync.Mutex
	m  map[chainKey]*chain
}

// get returns the cached chain for k if it is valid at t and was verified
// by the roots the Verifier trusts now for its product line.
func (c *chainCache) get(k chainKey, t time.Time, roots map[string]*productRoots) *chain {
	c.mu.Lock()
	ch := c.m[k]
	c.mu.Unlock()
	if ch == nil || !ch.validAt(t) || roots[ch.line] != ch.roots {
		return nil
	}
	return ch
}

func (c *chainCache) put(k chainKey, ch *chain) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[chainKey]*chain)
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxCachedChains {
		for old := range c.m { // evict an arbitrary entry
			delete(c.m, old)
			break
		}
	}
	c.m[k] = ch
}

// len returns how many chains are cached.
func (c *chainCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
