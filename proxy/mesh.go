package proxy

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	cpolicy "github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/proxy/meshtls"
	"github.com/meshscope/meshscope/proxy/policy"
	"github.com/meshscope/meshscope/proxy/policy/authz"
)

// meshState is the proxy's mesh security: its mTLS identity
// (proxy/meshtls) and the Authorization of its own service
// (proxy/policy/authz). Nil without --control-plane or with --mtls=false.
type meshState struct {
	p     *Proxy
	tls   *meshtls.Mesh
	authz atomic.Pointer[authz.Policy]
}

// Decision values of an Authorization.
const decisionDeny = "deny"

// MeshHooks is what the control client drives: certificate requests and
// answers, and the snapshot's peers and security policies. Nil when mTLS
// is off.
func (p *Proxy) MeshHooks() *MeshHooks {
	if p.mesh == nil {
		return nil
	}
	return &MeshHooks{m: p.mesh}
}

// MeshHooks adapts the proxy's mesh state to the control client.
type MeshHooks struct{ m *meshState }

// CertRequest returns a CSR when a certificate is due.
func (h *MeshHooks) CertRequest() []byte { return h.m.tls.CertRequest() }

// Issued installs a certificate.
func (h *MeshHooks) Issued(c *wire.Cert) error { return h.m.tls.Issued(c) }

// ConnectionLost forgets an outstanding certificate request.
func (h *MeshHooks) ConnectionLost() { h.m.tls.ConnectionLost() }

// Snapshot takes the mTLS peers and the own service's PeerAuthentication
// and Authorization from a snapshot.
func (h *MeshHooks) Snapshot(s *wire.Snapshot) error {
	m := h.m
	m.tls.SetPeers(s)
	strict := false
	var az *authz.Policy
	for i := range s.Services[m.p.cfg.Service].Policies {
		d := &s.Services[m.p.cfg.Service].Policies[i]
		switch spec := d.Spec.(type) {
		case *cpolicy.PeerAuthentication:
			strict = spec.TLS == cpolicy.TLSStrict
		case *cpolicy.Authorization:
			var err error
			if az, err = authz.Compile(d, m.p.cfg.Mode == ModeEnforce); err != nil {
				return err
			}
		}
	}
	m.tls.SetStrict(strict)
	m.authz.Store(az)
	return nil
}

// MTLSAddrs are the inbound listen addresses that accept mesh mTLS (all
// but declared-opaque ones, where the server may speak first).
func (p *Proxy) MTLSAddrs() []string {
	if p.mesh == nil {
		return nil
	}
	var out []string
	for _, l := range p.listeners {
		if l.t.kind == "inbound" && l.protocol != ProtocolOpaque {
			out = append(out, l.ln.Addr().String())
		}
	}
	return out
}

// meshAccept runs first on an inbound connection: mesh mTLS is terminated,
// plaintext admitted or (strict PeerAuthentication) refused. ok false:
// the connection is closed.
func (l *listener) meshAccept(c net.Conn) (net.Conn, bool) {
	m := l.p.mesh.tls
	br := bufio.NewReaderSize(c, 16)
	_ = c.SetReadDeadline(time.Now().Add(time.Duration(l.p.cfg.DetectTimeout)))
	b, _ := br.Peek(2)
	_ = c.SetReadDeadline(time.Time{})
	var pc net.Conn = &peekedConn{Conn: c, r: br}
	if len(b) == 0 {
		return pc, true // silent: detection closes it
	}
	mesh := false
	if len(b) == 2 && b[0] == 0x16 && b[1] == 0x03 {
		ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
		conn, isMesh, err := m.Accept(ctx, pc)
		cancel()
		if err != nil {
			l.p.logger.Debug("mesh mTLS handshake failed", "client", c.RemoteAddr().String(), "err", err)
			return nil, false
		}
		pc, mesh = conn, isMesh
	}
	if !m.Admit(mesh) {
		_ = c.Close()
		return nil, false
	}
	return pc, true
}

// meshConnKey holds the meshtls.Info of a request's connection.
type meshConnKey struct{}

// withMeshConn records the TLS state of an inbound connection in ctx.
func withMeshConn(ctx context.Context, c net.Conn) context.Context {
	for {
		switch cc := c.(type) {
		case *guardConn:
			c = cc.Conn
			continue
		case *peekedConn:
			c = cc.Conn
			continue
		case *meshtls.Conn:
			return context.WithValue(ctx, meshConnKey{}, meshtls.InfoOf(cc))
		}
		return ctx
	}
}

// meshInfo is the TLS state of r's inbound connection.
func meshInfo(r *http.Request) meshtls.Info {
	if i, ok := r.Context().Value(meshConnKey{}).(meshtls.Info); ok {
		return i
	}
	return meshtls.Info{TLS: meshtls.TLSPlaintext}
}

// meshRequest records the TLS state of an inbound request on its span and
// evaluates the service's Authorization; false: the request was denied
// (403 written).
func (p *Proxy) meshRequest(w *recorder, r *http.Request, t *target, k *requestKey, span *hopSpan) bool {
	if t.kind != "inbound" {
		return true
	}
	info := meshInfo(r)
	k.tls = info.TLS
	if span != nil {
		span.add(attribute.String("mesh.tls", info.TLS))
		if info.Peer != "" {
			span.add(attribute.String("mesh.peer.identity", info.Peer))
		}
	}
	az := p.mesh.authz.Load()
	if az == nil {
		return true
	}
	allowed, reason := az.Decide(r, authz.Caller{Identity: info.Peer})
	if allowed {
		return true
	}
	p.policyRec.Count(p.cfg.Service, policy.Ref{Kind: cpolicy.KindAuthorization, Name: az.Name, Enforce: az.Enforce}, decisionDeny)
	if span != nil {
		span.events = append(span.events, sdktrace.Event{Name: "policy.decision", Time: time.Now(), Attributes: []attribute.KeyValue{
			attribute.String("mesh.policy.kind", cpolicy.KindAuthorization),
			attribute.String("mesh.policy.name", az.Name),
			attribute.String("mesh.policy.decision", decisionDeny),
			attribute.String("mesh.policy.enforced", strconv.FormatBool(az.Enforce)),
			attribute.String("mesh.policy.reason", reason),
		}})
	}
	if !az.Enforce {
		return true
	}
	w.Header().Set(authz.ReasonHeader, reason)
	http.Error(w, "403 forbidden by mesh authorization\n", http.StatusForbidden)
	return false
}

// meshFinish labels an outbound request with the TLS of the hop it took:
// mTLS when its (last) endpoint, or the fixed address of its gateway
// route, is a meshed peer the proxy dials with mTLS.
func (p *Proxy) meshFinish(r *http.Request, t *target, k *requestKey, span *hopSpan) {
	if t.kind == "inbound" {
		return
	}
	st := policy.FromContext(r.Context())
	addr, _ := st.Endpoint()
	if addr == "" {
		addr = edgeAddr(r) // a gateway route's fixed address (no balancer picked it)
	}
	if addr == "" {
		return
	}
	k.tls = tlsPlaintext
	peer, mtls := p.mesh.tls.PeerFor(addr)
	if mtls {
		k.tls = meshtls.TLSMutual
	}
	if span != nil {
		span.add(attribute.String("mesh.tls", k.tls))
		if mtls {
			span.add(attribute.String("mesh.peer.identity", p.mesh.tls.PeerID(peer)))
		}
	}
}
