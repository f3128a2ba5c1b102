package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults.
const (
	DefaultTrustDomain  = "meshscope.local"
	DefaultCertLifetime = 24 * time.Hour
	// MinCertLifetime bounds --cert-lifetime from below: rotation at 2/3 of
	// the life must leave the proxies time to reach the server.
	MinCertLifetime = 10 * time.Second
	// MaxCertLifetime bounds it from above.
	MaxCertLifetime = 90 * 24 * time.Hour
	// rootLifetime is the lifetime of a generated root.
	rootLifetime = 10 * 365 * 24 * time.Hour
	// backdate covers clock skew between the server and the proxies.
	backdate = time.Minute
)

// Config configures the CA.
type Config struct {
	// Dir holds the generated root (ca.crt, ca.key). Default <data>/ca.
	Dir string `yaml:"dir"`
	// CertFile and KeyFile are a user-supplied signing certificate (a root
	// or an intermediate, PEM; the file may hold the chain up to the root)
	// and its key. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// TrustDomain is the SPIFFE trust domain. Default meshscope.local.
	TrustDomain string `yaml:"trust_domain"`
	// CertLifetime is the lifetime of issued proxy certificates. Default 24h.
	CertLifetime time.Duration `yaml:"cert_lifetime"`
}

// DefaultConfig returns the defaults (Dir derives from the data dir).
func DefaultConfig() Config {
	return Config{TrustDomain: DefaultTrustDomain, CertLifetime: DefaultCertLifetime}
}

var trustDomainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$`)

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("ca cert_file and key_file (--ca-cert, --ca-key): give both or neither")
	case c.CertFile == "" && c.Dir == "":
		return errors.New("ca dir: must be set")
	case !trustDomainRE.MatchString(c.TrustDomain):
		return fmt.Errorf("trust_domain (--trust-domain): %q: want lower-case letters, digits, '.' and '-'", c.TrustDomain)
	case c.CertLifetime < MinCertLifetime || c.CertLifetime > MaxCertLifetime:
		return fmt.Errorf("cert_lifetime (--cert-lifetime): %s: want between %s and %s", c.CertLifetime, MinCertLifetime, MaxCertLifetime)
	}
	return nil
}

// SPIFFEID is the identity of a service in a trust domain.
func SPIFFEID(trustDomain, service string) string {
	return "spiffe://" + trustDomain + "/service/" + service
}

// ServiceOf returns the service of a SPIFFE ID of trustDomain, or false.
func ServiceOf(trustDomain string, u *url.URL) (string, bool) {
	if u == nil || u.Scheme != "spiffe" || u.Host != trustDomain || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	svc, ok := strings.CutPrefix(u.Path, "/service/")
	if !ok || svc == "" || strings.Contains(svc, "/") {
		return "", false
	}
	return svc, true
}

// CA signs proxy certificates.
type CA struct {
	cfg    Config
	cert   *x509.Certificate
	key    crypto.Signer
	chain  []byte // PEM of the signing cert and its parents up to (excluding) the root
	bundle []byte // PEM of the trust anchor (the root)
	issued *prometheus.CounterVec
}

// Files in Config.Dir.
const (
	CertName = "ca.crt"
	KeyName  = "ca.key"
)

// New loads the configured signing certificate, or the root in Dir,
// creating it (key 0600) on first start.
func New(cfg Config, reg prometheus.Registerer) (*CA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	certFile, keyFile := cfg.CertFile, cfg.KeyFile
	if certFile == "" {
		certFile, keyFile = filepath.Join(cfg.Dir, CertName), filepath.Join(cfg.Dir, KeyName)
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := generateRoot(cfg, certFile, keyFile); err != nil {
				return nil, fmt.Errorf("creating the mesh root in %s: %w", cfg.Dir, err)
			}
		}
	}
	c := &CA{cfg: cfg}
	if err := c.load(certFile, keyFile); err != nil {
		return nil, err
	}
	c.issued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mesh_ca_certificates_issued_total", Help: "Proxy certificates the mesh CA signed, by result (issued, denied, invalid).",
	}, []string{"result"})
	if reg != nil {
		if err := reg.Register(c.issued); err != nil {
			return nil, fmt.Errorf("ca metrics: %w", err)
		}
	}
	return c, nil
}

func generateRoot(cfg Config, certFile, keyFile string) error {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Meshscope"}, CommonName: "Meshscope mesh root " + cfg.TrustDomain},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(rootLifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: cfg.TrustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile writes through a synced temporary file and a rename.
func writeFile(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n.Add(n, big.NewInt(1))
}

func (c *CA) load(certFile, keyFile string) error {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("mesh CA certificate: %w", err)
	}
	var certs []*x509.Certificate
	for rest := cb; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		crt, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fmt.Errorf("mesh CA certificate %s: %w", certFile, err)
		}
		certs = append(certs, crt)
	}
	if len(certs) == 0 {
		return fmt.Errorf("mesh CA certificate %s: no PEM CERTIFICATE block", certFile)
	}
	if !certs[0].IsCA || certs[0].KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("mesh CA certificate %s: the first certificate is not a CA (basic constraints CA:TRUE and keyCertSign)", certFile)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return fmt.Errorf("mesh CA key: %w", err)
	}
	kblock, _ := pem.Decode(kb)
	if kblock == nil {
		return fmt.Errorf("mesh CA key %s: no PEM block", keyFile)
	}
	var key any
	switch kblock.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kblock.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kblock.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kblock.Bytes)
	}
	if err != nil {
		return fmt.Errorf("mesh CA key %s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return fmt.Errorf("mesh CA key %s: %T cannot sign", keyFile, key)
	}
	if !publicKeysEqual(signer.Public(), certs[0].PublicKey) {
		return fmt.Errorf("mesh CA key %s does not match the certificate %s", keyFile, certFile)
	}
	c.cert, c.key = certs[0], signer
	// The chain sent with a leaf: the signing cert and any intermediates;
	// the trust bundle: the last certificate (the root).
	root := certs[len(certs)-1]
	for _, crt := range certs {
		if crt == root && len(certs) > 1 {
			break
		}
		if len(certs) > 1 {
			c.chain = append(c.chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: crt.Raw})...)
		}
	}
	c.bundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// TrustDomain is the configured trust domain.
func (c *CA) TrustDomain() string { return c.cfg.TrustDomain }

// Bundle is the PEM trust anchor proxies verify peers against.
func (c *CA) Bundle() []byte { return append([]byte(nil), c.bundle...) }

// Issued is one signed certificate.
type Issued struct {
	// Chain is the PEM leaf followed by any intermediates.
	Chain []byte
	// Bundle is the PEM trust anchor.
	Bundle   []byte
	SPIFFEID string
	NotAfter time.Time
}

// MaxCSRBytes bounds a PEM certificate request.
const MaxCSRBytes = 16 << 10

// Sign issues a certificate for service from a PEM certificate request;
// the request's subject and SANs are ignored: the identity is the
// service's SPIFFE ID and nothing else.
func (c *CA) Sign(csrPEM []byte, service string, now time.Time) (*Issued, error) {
	iss, err := c.sign(csrPEM, service, now)
	if err != nil {
		c.issued.WithLabelValues("invalid").Inc()
		return nil, err
	}
	c.issued.WithLabelValues("issued").Inc()
	return iss, nil
}

// Denied counts a request the authorizer refused.
func (c *CA) Denied() { c.issued.WithLabelValues("denied").Inc() }

func (c *CA) sign(csrPEM []byte, service string, now time.Time) (*Issued, error) {
	if len(csrPEM) > MaxCSRBytes {
		return nil, fmt.Errorf("csr: larger than %d bytes", MaxCSRBytes)
	}
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr: want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: signature: %w", err)
	}
	if service == "" {
		return nil, errors.New("csr: no service to name")
	}
	id := SPIFFEID(c.cfg.TrustDomain, service)
	u, err := url.Parse(id)
	if err != nil {
		return nil, fmt.Errorf("csr: service %q: %w", service, err)
	}
	notAfter := now.Add(c.cfg.CertLifetime)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Meshscope"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, csr.PublicKey, c.key)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), c.chain...)
	return &Issued{Chain: chain, Bundle: c.Bundle(), SPIFFEID: id, NotAfter: notAfter}, nil
}

// Fingerprint is the hex SHA-256 of the signing certificate (DER).
func (c *CA) Fingerprint() string {
	sum := sha256.Sum256(c.cert.Raw)
	return hex.EncodeToString(sum[:])
}
