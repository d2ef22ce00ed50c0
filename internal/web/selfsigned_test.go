package web

import (
	"crypto/x509"
	"testing"
	"time"
)

// TestSelfSigned: the certificate names every loopback address, is valid
// for the time asked, and verifies for 127.0.0.1 when pinned, not for
// another host.
func TestSelfSigned(t *testing.T) {
	now := time.Now()
	der, key, err := SelfSigned("test", now, time.Hour)
	if err != nil || key == nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	for host, ok := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "kura.example": false} {
		_, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: now})
		if (err == nil) != ok {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", CurrentTime: now.Add(2 * time.Hour)}); err == nil {
		t.Error("valid after its validity")
	}
}
