package meshtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/wire"
)

// TLS label values.
const (
	TLSMutual    = "mtls"
	TLSPlaintext = "plaintext"
)

// pendingTimeout is how long an unanswered certificate request blocks a
// new one.
const pendingTimeout = 10 * time.Second

// Mesh is one proxy's mesh identity and peer table. Safe for concurrent use.
type Mesh struct {
	service string
	logger  *slog.Logger
	now     func() time.Time

	cur atomic.Pointer[identity] // nil until the first certificate

	mu         sync.Mutex
	pendingKey *ecdsa.PrivateKey
	pendingAt  time.Time
	peers      map[string]string // mTLS endpoint address → service
	strict     atomic.Bool

	certs      *prometheus.CounterVec
	expiry     prometheus.Gauge
	handshakes *prometheus.CounterVec
	conns      *prometheus.CounterVec
}

// identity is one certificate and the trust bundle it came with.
type identity struct {
	cert        tls.Certificate
	leaf        *x509.Certificate
	roots       *x509.CertPool
	trustDomain string
	id          string
	// renewAt is 2/3 of the way from receipt to expiry (the CA backdates
	// NotBefore for clock skew, so the receipt time is the start).
	renewAt time.Time
}

// New returns a mesh identity for service, without a certificate.
func New(service string, reg prometheus.Registerer, logger *slog.Logger) (*Mesh, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Mesh{service: service, logger: logger.With("component", "mtls"), now: time.Now, peers: map[string]string{},
		certs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesh_proxy_certificates_total",
			Help: "Mesh certificates this proxy requested, by result (issued, refused, invalid)."}, []string{"result"}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mesh_proxy_certificate_expiry_timestamp_seconds",
			Help: "When the proxy's current mesh certificate expires (0 = none yet)."}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesh_tls_handshakes_total",
			Help: "Mesh mTLS handshakes by side (client, server) and result (ok, failed)."}, []string{"side", "result"}),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mesh_tls_inbound_connections_total",
			Help: "Inbound connections by tls (mtls, plaintext) and action (accepted, refused: strict PeerAuthentication)."}, []string{"tls", "action"}),
	}
	for _, c := range []prometheus.Collector{m.certs, m.expiry, m.handshakes, m.conns} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("mtls metrics: %w", err)
		}
	}
	return m, nil
}

// current returns the identity if its certificate is valid now.
func (m *Mesh) current() *identity {
	id := m.cur.Load()
	if id == nil {
		return nil
	}
	now := m.now()
	if now.After(id.leaf.NotAfter) || now.Before(id.leaf.NotBefore) {
		return nil
	}
	return id
}

// Ready reports whether the proxy holds a valid certificate.
func (m *Mesh) Ready() bool { return m.current() != nil }

// ID is the proxy's SPIFFE ID ("" before the first certificate).
func (m *Mesh) ID() string {
	if id := m.cur.Load(); id != nil {
		return id.id
	}
	return ""
}

// NotAfter is when the current certificate expires (zero without one).
func (m *Mesh) NotAfter() time.Time {
	if id := m.cur.Load(); id != nil {
		return id.leaf.NotAfter
	}
	return time.Time{}
}

// CertRequest returns a PEM CSR when the proxy needs a certificate (none
// yet, or 2/3 of the current one's life passed) and no request is
// outstanding; nil otherwise. The control client calls it on every tick.
func (m *Mesh) CertRequest() []byte {
	now := m.now()
	if id := m.cur.Load(); id != nil && now.Before(id.renewAt) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pendingKey != nil && now.Sub(m.pendingAt) < pendingTimeout {
		return nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		m.logger.Error("generating a key", "err", err)
		return nil
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		m.logger.Error("creating a certificate request", "err", err)
		return nil
	}
	m.pendingKey, m.pendingAt = key, now
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// ConnectionLost forgets an outstanding request (its stream ended).
func (m *Mesh) ConnectionLost() {
	m.mu.Lock()
	m.pendingKey = nil
	m.mu.Unlock()
}

// Issued installs the answer to the outstanding request.
func (m *Mesh) Issued(c *wire.Cert) error {
	m.mu.Lock()
	key := m.pendingKey
	m.pendingKey = nil
	m.mu.Unlock()
	if c.Error != "" {
		m.certs.WithLabelValues("refused").Inc()
		return fmt.Errorf("control plane refused a certificate: %s", c.Error)
	}
	if key == nil {
		m.certs.WithLabelValues("invalid").Inc()
		return errors.New("certificate without an outstanding request")
	}
	id, err := m.parse(c, key)
	if err != nil {
		m.certs.WithLabelValues("invalid").Inc()
		return err
	}
	m.cur.Store(id)
	m.certs.WithLabelValues("issued").Inc()
	m.expiry.Set(float64(id.leaf.NotAfter.Unix()))
	m.logger.Info("mesh certificate installed", "spiffe_id", id.id, "not_after", id.leaf.NotAfter)
	return nil
}

func (m *Mesh) parse(c *wire.Cert, key *ecdsa.PrivateKey) (*identity, error) {
	var chain [][]byte
	for rest := []byte(c.Chain); ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		chain = append(chain, b.Bytes)
	}
	if len(chain) == 0 {
		return nil, errors.New("certificate: empty chain")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, errors.New("certificate: not for the requested key")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(c.Bundle)) {
		return nil, errors.New("certificate: no trust bundle")
	}
	inter := x509.NewCertPool()
	for _, der := range chain[1:] {
		if crt, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(crt)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: m.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("certificate does not chain to the bundle: %w", err)
	}
	want := "spiffe://" + c.TrustDomain + "/service/" + m.service
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		return nil, fmt.Errorf("certificate: URI SAN %v, want %s", leaf.URIs, want)
	}
	now := m.now()
	return &identity{cert: tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, leaf: leaf, roots: roots,
		trustDomain: c.TrustDomain, id: want, renewAt: now.Add(leaf.NotAfter.Sub(now) * 2 / 3)}, nil
}

// SetPeers replaces the table of endpoints that accept mesh mTLS, from a
// control-plane snapshot.
func (m *Mesh) SetPeers(snap *wire.Snapshot) {
	peers := map[string]string{}
	for svc, s := range snap.Services {
		for _, e := range s.Endpoints {
			if e.MTLS {
				peers[e.Address] = svc
			}
		}
	}
	m.mu.Lock()
	m.peers = peers
	m.mu.Unlock()
}

// SetStrict sets whether inbound plaintext is refused (PeerAuthentication
// tls: strict for the proxy's own service).
func (m *Mesh) SetStrict(strict bool) { m.strict.Store(strict) }

// Strict reports the inbound PeerAuthentication mode.
func (m *Mesh) Strict() bool { return m.strict.Load() }

// PeerFor returns the service of an mTLS endpoint address and whether the
// proxy would dial it with mTLS now.
func (m *Mesh) PeerFor(addr string) (string, bool) {
	if m.current() == nil {
		return "", false
	}
	m.mu.Lock()
	svc, ok := m.peers[addr]
	m.mu.Unlock()
	return svc, ok
}

// ServiceOf returns the service of a SPIFFE ID of trustDomain.
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

// verify checks a peer chain against the current bundle and returns the
// peer's SPIFFE ID; want, if set, is the service it must be.
func (m *Mesh) verify(rawCerts [][]byte, usage x509.ExtKeyUsage, want string) (string, error) {
	id := m.cur.Load()
	if id == nil {
		return "", errors.New("mtls: no trust bundle yet")
	}
	if len(rawCerts) == 0 {
		return "", errors.New("mtls: peer sent no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, der := range rawCerts {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return "", fmt.Errorf("mtls: peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: id.roots, Intermediates: inter, CurrentTime: m.now(),
		KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return "", fmt.Errorf("mtls: peer certificate: %w", err)
	}
	if len(certs[0].URIs) != 1 {
		return "", errors.New("mtls: peer certificate has no single SPIFFE ID")
	}
	svc, ok := ServiceOf(id.trustDomain, certs[0].URIs[0])
	if !ok {
		return "", fmt.Errorf("mtls: peer identity %s is not of trust domain %s", certs[0].URIs[0], id.trustDomain)
	}
	if want != "" && svc != want {
		return "", fmt.Errorf("mtls: peer is %s, want service %s", certs[0].URIs[0], want)
	}
	return certs[0].URIs[0].String(), nil
}

// clientConfig is the TLS config for dialing a peer of service.
func (m *Mesh) clientConfig(service string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{wire.MeshALPN},
		ServerName: service,
		// The chain and the SPIFFE ID are checked in VerifyConnection
		// against the current bundle (host names play no part).
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if id := m.current(); id != nil {
				return &id.cert, nil
			}
			return &tls.Certificate{}, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != wire.MeshALPN {
				return errors.New("mtls: peer did not negotiate " + wire.MeshALPN)
			}
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			_, err := m.verify(raw, x509.ExtKeyUsageServerAuth, service)
			return err
		},
	}
}

// ServerConfig is the TLS config of inbound mesh mTLS. A caller without a
// certificate is accepted (it is then unauthenticated), one with a bad
// certificate refused.
func (m *Mesh) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{wire.MeshALPN},
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if id := m.current(); id != nil {
				return &id.cert, nil
			}
			return nil, errors.New("mtls: no certificate yet")
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			_, err := m.verify(raw, x509.ExtKeyUsageClientAuth, "")
			return err
		},
	}
}

// DialFunc dials a connection.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// WrapDial returns dial with mTLS towards meshed peers while the proxy
// holds a certificate; other addresses are dialed as they were.
func (m *Mesh) WrapDial(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		svc, ok := m.PeerFor(addr)
		if !ok {
			return dial(ctx, network, addr)
		}
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, m.clientConfig(svc))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			m.handshakes.WithLabelValues("client", "failed").Inc()
			return nil, fmt.Errorf("mtls to %s (%s): %w", addr, svc, err)
		}
		m.handshakes.WithLabelValues("client", "ok").Inc()
		return &Conn{Conn: tc, tc: tc, peer: spiffeOf(tc)}, nil
	}
}

func spiffeOf(tc *tls.Conn) string {
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) > 0 && len(cs.PeerCertificates[0].URIs) == 1 {
		return cs.PeerCertificates[0].URIs[0].String()
	}
	return ""
}

// Conn is a mesh mTLS connection. Its type hides *tls.Conn from net/http,
// which treats the bytes inside as the plaintext protocol they are.
type Conn struct {
	net.Conn
	tc   *tls.Conn
	peer string
}

// Peer is the peer's SPIFFE ID ("" for an unauthenticated caller).
func (c *Conn) Peer() string { return c.peer }

// CloseWrite half-closes the TLS stream.
func (c *Conn) CloseWrite() error { return c.tc.CloseWrite() }

// Info is the TLS state of an inbound connection.
type Info struct {
	TLS  string // TLSMutual or TLSPlaintext
	Peer string // the caller's SPIFFE ID, "" when unauthenticated
}

// InfoOf returns the TLS state of a connection Accept returned.
func InfoOf(c net.Conn) Info {
	if mc, ok := c.(*Conn); ok {
		return Info{TLS: TLSMutual, Peer: mc.peer}
	}
	return Info{TLS: TLSPlaintext}
}

// PeerID is the SPIFFE ID of service in the proxy's trust domain ("" before
// the first certificate).
func (m *Mesh) PeerID(service string) string {
	if id := m.cur.Load(); id != nil {
		return "spiffe://" + id.trustDomain + "/service/" + service
	}
	return ""
}
