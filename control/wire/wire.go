package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"time"

	"github.com/meshscope/meshscope/control/policy"
)

// Path is the WebSocket endpoint on the server's --http address.
const Path = "/api/control/v1/stream"

// Protocol is the protocol version a hello announces.
const Protocol = 1

// Message types.
const (
	TypeHello    = "hello"
	TypeSnapshot = "snapshot"
	TypeStatus   = "status"
	TypeError    = "error"
	// TypeCertRequest and TypeCert carry a proxy's certificate request and
	// the signed certificate (docs/mtls.md).
	TypeCertRequest = "cert_request"
	TypeCert        = "cert"
	// TypeDelta is reserved for incremental updates.
	TypeDelta = "delta"
)

// Limits and timings both sides use.
const (
	// MaxProxyMessage caps a message from a proxy (hello, status).
	MaxProxyMessage = 1 << 20
	// MaxServerMessage caps a message from the server (snapshot).
	MaxServerMessage = 64 << 20
	// PingInterval is how often the server pings each proxy.
	PingInterval = 15 * time.Second
	// PongWait is how long either side waits for any frame before it
	// considers the stream dead (3 pings).
	PongWait = 3 * PingInterval
	// WriteWait bounds one write.
	WriteWait = 10 * time.Second
)

// Health values.
const (
	HealthUnknown   = "unknown"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Hello is the first message of a proxy.
type Hello struct {
	Type string `json:"type"` // "hello"
	// Protocol is the version the proxy speaks (Protocol).
	Protocol int `json:"protocol"`
	// ProxyID is unique per proxy process and stable across reconnects.
	ProxyID string `json:"proxy_id"`
	// Service and Version are the proxy's --service and --version.
	Service string `json:"service"`
	Version string `json:"version"`
	// Inbound lists the host:port addresses where callers reach this
	// instance (its inbound listeners). Empty for a proxy that only calls
	// out; such a proxy is not an endpoint.
	Inbound []string `json:"inbound"`
	// Mode is the proxy's own --mode: observe or enforce.
	Mode policy.Mode `json:"mode"`
	// Labels are free-form key/value pairs shown in the registry.
	Labels map[string]string `json:"labels,omitempty"`
	// Upstreams are the services the proxy calls.
	Upstreams []string `json:"upstreams"`
	// ConfigVersion is the snapshot version the proxy holds (from its
	// state dir); 0 = none.
	ConfigVersion uint64 `json:"config_version"`
	// MTLS lists the inbound addresses that accept mesh mTLS (ALPN
	// MeshALPN); callers use mTLS only towards these. Must be a subset of
	// Inbound.
	MTLS []string `json:"mtls,omitempty"`
}

// MeshALPN is the ALPN protocol of proxy-to-proxy mTLS: inside it, the
// caller's bytes as it got them (HTTP/1, h2c, gRPC or opaque TCP).
const MeshALPN = "meshscope-mtls/1"

// CertRequest asks the server to sign a certificate for the proxy's
// service (the hello's). At most one is outstanding per stream.
type CertRequest struct {
	Type string `json:"type"` // "cert_request"
	// CSR is a PEM CERTIFICATE REQUEST; its subject and SANs are ignored.
	CSR string `json:"csr"`
}

// Cert answers a CertRequest: a chain and trust bundle, or an error.
type Cert struct {
	Type string `json:"type"` // "cert"
	// Chain is the PEM leaf certificate followed by any intermediates.
	Chain string `json:"chain,omitempty"`
	// Bundle is the PEM trust anchor (the mesh root).
	Bundle string `json:"bundle,omitempty"`
	// SPIFFEID is the identity in the leaf's URI SAN.
	SPIFFEID string `json:"spiffe_id,omitempty"`
	// TrustDomain is the server's trust domain.
	TrustDomain string `json:"trust_domain,omitempty"`
	// Error says why no certificate was issued.
	Error string `json:"error,omitempty"`
}

// Snapshot is the full config of a proxy: every service it calls and its
// own. It replaces the previous snapshot whole.
type Snapshot struct {
	Type string `json:"type"` // "snapshot"
	// Version is the policy version (the store's, durable; the one the
	// apply API answers). It never decreases.
	Version uint64 `json:"version"`
	// Generation counts the snapshots of this server process (endpoint
	// changes bump it too); it restarts with the server.
	Generation uint64 `json:"generation"`
	// Services maps a service name to its endpoints and policies.
	Services map[string]Service `json:"services"`
}

// Service is one service in a snapshot.
type Service struct {
	// Endpoints are the registered instances, sorted by address.
	Endpoints []Endpoint `json:"endpoints"`
	// Policies are the documents whose service this is, sorted by kind
	// and name. Documents of kinds the proxy does not know have a nil Spec.
	Policies []policy.Document `json:"policies"`
}

// Endpoint is one instance of a service.
type Endpoint struct {
	Address string `json:"address"`
	Version string `json:"version"`
	ProxyID string `json:"proxy_id"`
	// Mode is the endpoint proxy's own mode.
	Mode policy.Mode `json:"mode"`
	// Health is healthy, unhealthy or unknown: the endpoint's own proxy's
	// health check of its application, or unhealthy when every caller
	// that reports on it says so. Callers skip unhealthy endpoints while
	// healthy ones remain.
	Health string `json:"health"`
	// MTLS is true when the endpoint accepts mesh mTLS.
	MTLS bool `json:"mtls,omitempty"`
	// Ejected is true while any caller's outlier detection has it
	// ejected. Informational: each caller ejects on its own evidence.
	Ejected bool `json:"ejected"`
}

// Status is the proxy's periodic report; each replaces the previous one
// of the same proxy whole. Proxies send it after applying a snapshot and
// whenever what it reports changes (at most about once a second).
type Status struct {
	Type string `json:"type"` // "status"
	// ConfigVersion is the snapshot version the proxy applied.
	ConfigVersion uint64 `json:"config_version"`
	// Health is the proxy's own application as its health check sees it
	// (unknown without a health check).
	Health string `json:"health,omitempty"`
	// Endpoints is the proxy's view of the endpoints it calls: only those
	// it has something to say about (unhealthy or ejected) need be listed.
	Endpoints []EndpointStatus `json:"endpoints,omitempty"`
}

// EndpointStatus is a caller's view of one endpoint.
type EndpointStatus struct {
	Service string `json:"service"`
	Address string `json:"address"`
	Health  string `json:"health,omitempty"`
	Ejected bool   `json:"ejected"`
	// Reason says why it is ejected or unhealthy, e.g. "5 consecutive 5xx".
	Reason string `json:"reason,omitempty"`
	// Until is when the ejection ends (zero when not ejected).
	Until time.Time `json:"until,omitzero"`
}

// Error is the server's last message before it closes a stream.
type Error struct {
	Type    string `json:"type"` // "error"
	Message string `json:"message"`
}

// Encode marshals a message, setting its type.
func Encode(msg any) ([]byte, error) {
	switch m := msg.(type) {
	case *Hello:
		m.Type = TypeHello
	case *Snapshot:
		m.Type = TypeSnapshot
	case *Status:
		m.Type = TypeStatus
	case *Error:
		m.Type = TypeError
	case *CertRequest:
		m.Type = TypeCertRequest
	case *Cert:
		m.Type = TypeCert
	default:
		return nil, fmt.Errorf("wire: cannot encode %T", msg)
	}
	return json.Marshal(msg)
}

// ErrUnknownType is returned (wrapped) by Decode for a message type this
// build does not know; receivers skip such messages.
var ErrUnknownType = errors.New("unknown message type")

// Decode unmarshals a message into *Hello, *Snapshot, *Status or *Error.
func Decode(data []byte) (any, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("wire: message is not a JSON object: %w", err)
	}
	var msg any
	switch head.Type {
	case TypeHello:
		msg = new(Hello)
	case TypeSnapshot:
		msg = new(Snapshot)
	case TypeStatus:
		msg = new(Status)
	case TypeError:
		msg = new(Error)
	case TypeCertRequest:
		msg = new(CertRequest)
	case TypeCert:
		msg = new(Cert)
	case "":
		return nil, errors.New("wire: message has no type")
	default:
		return nil, fmt.Errorf("wire: %q: %w", head.Type, ErrUnknownType)
	}
	if err := json.Unmarshal(data, msg); err != nil {
		return nil, fmt.Errorf("wire: %s message: %w", head.Type, err)
	}
	return msg, nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$`)

// Validate checks a hello and names the bad field.
func (h *Hello) Validate() error {
	switch {
	case h.Protocol != Protocol:
		return fmt.Errorf("hello: protocol %d: this server speaks %d", h.Protocol, Protocol)
	case h.ProxyID == "" || len(h.ProxyID) > 253:
		return errors.New("hello: proxy_id: must be set (at most 253 bytes)")
	case !nameRE.MatchString(h.Service):
		return fmt.Errorf("hello: service: %q: want lower-case letters, digits, '-', '.' or '_'", h.Service)
	case len(h.Version) > 253:
		return errors.New("hello: version: at most 253 bytes")
	case h.Mode != policy.ModeObserve && h.Mode != policy.ModeEnforce:
		return fmt.Errorf("hello: mode: %q: want observe or enforce", h.Mode)
	case len(h.Inbound) > 64:
		return errors.New("hello: inbound: at most 64 addresses")
	case len(h.Upstreams) > 4096:
		return errors.New("hello: upstreams: at most 4096 services")
	case len(h.Labels) > 64:
		return errors.New("hello: labels: at most 64")
	}
	for i, a := range h.Inbound {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" || len(a) > 300 {
			return fmt.Errorf("hello: inbound[%d]: %q is not a host:port address", i, a)
		}
	}
	if len(h.MTLS) > len(h.Inbound) {
		return errors.New("hello: mtls: more addresses than inbound")
	}
	for i, a := range h.MTLS {
		if !slices.Contains(h.Inbound, a) {
			return fmt.Errorf("hello: mtls[%d]: %q is not one of inbound", i, a)
		}
	}
	for i, u := range h.Upstreams {
		if !nameRE.MatchString(u) {
			return fmt.Errorf("hello: upstreams[%d]: %q is not a service name", i, u)
		}
	}
	return nil
}
