package topology

import (
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a stream client is refused (label values of
// meshscope_topology_stream_refused_clients_total).
const (
	refusedTotal      = "total"
	refusedPerAddress = "per_address"
)

// streamAdmission caps the stream's WebSocket clients in total and per
// client address, so clients that connect and never read cannot hold an
// unbounded number of connections and send queues. A client over a cap is
// refused before the upgrade.
type streamAdmission struct {
	maxTotal, maxPerAddr int
	refused              *prometheus.CounterVec

	mu     sync.Mutex
	total  int
	byAddr map[string]int
}

func newStreamAdmission(maxTotal, maxPerAddr int) *streamAdmission {
	a := &streamAdmission{
		maxTotal:   maxTotal,
		maxPerAddr: maxPerAddr,
		byAddr:     map[string]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_topology_stream_refused_clients_total",
			Help: "Graph stream clients refused with 503 because the server (reason=\"total\") or their address (reason=\"per_address\") had as many clients as allowed.",
		}, []string{"reason"}),
	}
	a.refused.WithLabelValues(refusedTotal)
	a.refused.WithLabelValues(refusedPerAddress)
	return a
}

// acquire takes a client slot for addr; release must be called once when
// the client is gone. Over a cap it returns an error saying which.
func (a *streamAdmission) acquire(addr string) (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= a.maxTotal {
		a.refused.WithLabelValues(refusedTotal).Inc()
		return nil, fmt.Errorf("the graph stream has %d clients, the most allowed (stream_max_clients)", a.total)
	}
	if a.byAddr[addr] >= a.maxPerAddr {
		a.refused.WithLabelValues(refusedPerAddress).Inc()
		return nil, fmt.Errorf("address %s has %d graph stream clients, the most allowed per address (stream_max_clients_per_address)", addr, a.byAddr[addr])
	}
	a.total++
	a.byAddr[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.total--
			if a.byAddr[addr]--; a.byAddr[addr] <= 0 {
				delete(a.byAddr, addr)
			}
		})
	}, nil
}

// clientAddress is the IP of the connection's peer (without the port):
// clients behind one address share its cap. Forwarding headers are not
// trusted.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
