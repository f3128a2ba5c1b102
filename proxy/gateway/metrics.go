package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the meshscope_gateway_* series (docs/metrics.md). Labels
// are bounded: routes come from the document, reasons from a fixed set.
type metrics struct {
	authFailures *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	certExpiry   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_gateway_auth_failures_total", Help: "Requests the gateway answered 401, by route and reason.",
		}, []string{"route", "reason"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_gateway_rate_limited_total", Help: "Requests the gateway answered 429, by route and client-key kind.",
		}, []string{"route", "key"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_gateway_rejected_total", Help: "Requests the gateway answered itself for other reasons (no_route, body_too_large, bad_path, https_redirect).",
		}, []string{"route", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_gateway_config_reloads_total", Help: "Gateway configuration reloads by source (file, signal, control_plane) and result (applied, rejected).",
		}, []string{"source", "result"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshscope_gateway_certificate_expiry_timestamp_seconds", Help: "When each served certificate expires (Unix seconds), by listener address and first SNI host.",
		}, []string{"listener", "host"}),
	}
	for _, c := range []prometheus.Collector{m.authFailures, m.rateLimited, m.rejected, m.reloads, m.certExpiry} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observeCerts(st *state) {
	m.certExpiry.Reset()
	gw := st.doc.Gateway()
	for i, certs := range st.certs {
		for _, c := range certs {
			if c.leaf != nil && len(c.hosts) > 0 {
				m.certExpiry.WithLabelValues(gw.Listeners[i].Address, c.hosts[0]).Set(float64(c.leaf.NotAfter.Unix()))
			}
		}
	}
}
