package auth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"
)

// ServerTLS returns a TLS config serving certFile/keyFile (PEM), reloaded
// when either file changes (checked at most every 10 s), so certificates
// rotate without a restart. nextProtos is the ALPN list ("h2", "http/1.1").
func ServerTLS(certFile, keyFile string, nextProtos ...string) (*tls.Config, error) {
	r := &certReloader{cert: certFile, key: keyFile}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     nextProtos,
		GetCertificate: r.get,
	}, nil
}

type certReloader struct {
	cert, key string

	mu      sync.Mutex
	current *tls.Certificate
	mtime   time.Time
	checked time.Time
}

func (r *certReloader) modTime() time.Time {
	var t time.Time
	for _, p := range []string{r.cert, r.key} {
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

func (r *certReloader) load() error {
	c, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", r.cert, r.key, err)
	}
	r.current, r.mtime, r.checked = &c, r.modTime(), time.Now()
	return nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) > 10*time.Second {
		r.checked = time.Now()
		if m := r.modTime(); m.After(r.mtime) {
			old := r.current
			if err := r.load(); err != nil {
				r.current = old // keep serving the last good pair
			}
		}
	}
	return r.current, nil
}

// ClientTLS returns the TLS config of a client of the Meshscope server:
// the roots of caFile (PEM) when given (a server whose --tls-cert a
// private CA signs), else the system roots; flag names the flag for
// errors.
func ClientTLS(flag, caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s %s: no PEM CERTIFICATE block", flag, caFile)
	}
	c.RootCAs = pool
	return c, nil
}
