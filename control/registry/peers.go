package registry

import (
	"maps"

	"github.com/meshscope/meshscope/control/wire"
)

// Peer is a proxy registered at another server of the cluster: its
// endpoints are served to this server's proxies too.
type Peer struct {
	Hello         wire.Hello `json:"hello"`
	Health        string     `json:"health,omitempty"`
	ConfigVersion uint64     `json:"config_version,omitempty"`
}

// Publisher tells the other servers of a cluster about this server's
// proxies (control/etcdstate.Peers). Publish must not block; a nil peer
// withdraws the proxy.
type Publisher interface {
	Publish(proxyID string, p *Peer)
}

// SetPublisher shares this server's proxies; call before serving.
func (r *Registry) SetPublisher(p Publisher) { r.publisher = p }

// publishLocked shares proxy id's registration (nil p: it left).
func (r *Registry) publishLocked(id string, p *proxy) {
	if r.publisher == nil {
		return
	}
	if p == nil {
		r.publisher.Publish(id, nil)
		return
	}
	r.publisher.Publish(id, &Peer{Hello: p.hello, Health: normHealth(p.status.Health), ConfigVersion: p.status.ConfigVersion})
}

// SetPeers replaces the proxies registered at the other servers (by proxy
// id) and queues snapshots for the proxies calling services whose
// endpoints changed.
func (r *Registry) SetPeers(peers map[string]Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := map[string]bool{}
	for id, p := range peers {
		old, ok := r.peers[id]
		if !ok || !sameEndpoint(&old.Hello, &p.Hello) || old.Health != p.Health {
			changed[p.Hello.Service] = true
		}
	}
	for id, old := range r.peers {
		if _, ok := peers[id]; !ok {
			changed[old.Hello.Service] = true
		}
	}
	r.peers = maps.Clone(peers)
	r.markLocked(changed)
}

// peerWinsLocked says whether a proxy's registration at another server
// replaces this server's: it reconnected there while this server still
// holds it for the grace period.
func (r *Registry) peerWinsLocked(p *proxy) bool {
	_, ok := r.peers[p.hello.ProxyID]
	return ok && p.conn == nil
}
