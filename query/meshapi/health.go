package meshapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/timestamp"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/query/red"
)

// Health statuses.
const (
	HealthOK       = "ok"       // stores answer and proxies report
	HealthDegraded = "degraded" // stores answer, but no proxy reported in the proxy window
	HealthFailing  = "failing"  // a store does not answer
)

// StoreHealth is one store's state.
type StoreHealth struct {
	OK         bool   `json:"ok"`
	Configured bool   `json:"configured"`
	Error      string `json:"error,omitempty"`
	// Damage describes stored data the store found unreadable and skipped
	// (the store answers; status is degraded).
	Damage string `json:"damage,omitempty"`
}

// damageReporter is a trace store that reports data it found damaged.
type damageReporter interface {
	Damage() tracestore.Damage
}

// ProxyInfo is one reporting proxy.
type ProxyInfo struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Mode    string `json:"mode"`
}

// Health is the answer of GET /api/mesh/health: HTTP 200 when Status is ok
// or degraded, 503 when failing.
type Health struct {
	Status           string                 `json:"status"`
	Time             time.Time              `json:"time"`
	Stores           map[string]StoreHealth `json:"stores"` // "metrics", "traces"
	ProxyWindow      string                 `json:"proxy_window"`
	ProxiesReporting int                    `json:"proxies_reporting"` // meshscope_proxy_info series seen in the window
	Proxies          []ProxyInfo            `json:"proxies"`
	Problems         []string               `json:"problems"`
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	timeout := a.opts.Timeout
	if timeout <= 0 || timeout > 10*time.Second {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	now := a.opts.Now()
	h := Health{
		Status:      HealthOK,
		Time:        now.UTC(),
		Stores:      map[string]StoreHealth{},
		ProxyWindow: red.Range(a.opts.ProxyWindow),
		Proxies:     []ProxyInfo{},
		Problems:    []string{},
	}
	fail := func(store string, err error) {
		h.Stores[store] = StoreHealth{Configured: true, Error: err.Error()}
		h.Status = HealthFailing
		h.Problems = append(h.Problems, fmt.Sprintf("%s store: %v", store, err))
	}

	if err := a.checkMetrics(ctx, now); err != nil {
		fail("metrics", err)
	} else {
		h.Stores["metrics"] = StoreHealth{OK: true, Configured: true}
		proxies, err := a.red.Proxies(ctx, a.opts.ProxyWindow, now)
		if err != nil {
			fail("metrics", err)
		}
		for _, p := range proxies {
			h.Proxies = append(h.Proxies, ProxyInfo(p))
		}
		h.ProxiesReporting = len(proxies)
		if err == nil && len(proxies) == 0 {
			h.Status = HealthDegraded
			h.Problems = append(h.Problems, fmt.Sprintf("no proxy reported meshscope_proxy_info in the last %s", h.ProxyWindow))
		}
	}

	switch {
	case a.traces == nil:
		h.Stores["traces"] = StoreHealth{Configured: false, Error: "no trace store is configured"}
		h.Status = HealthFailing
		h.Problems = append(h.Problems, "traces store: not configured")
	default:
		if _, err := a.traces.Services(ctx); err != nil {
			fail("traces", err)
			break
		}
		sh := StoreHealth{OK: true, Configured: true}
		if dr, ok := a.traces.(damageReporter); ok {
			if d := dr.Damage(); d.Regions > 0 {
				sh.Damage = fmt.Sprintf("%d damaged region(s), %d bytes skipped at open (%s); the spans they held are lost",
					d.Regions, d.Bytes, strings.Join(d.Where, ", "))
				h.Status = HealthDegraded
				h.Problems = append(h.Problems, "traces store: "+sh.Damage)
			}
		}
		h.Stores["traces"] = sh
	}
	code := http.StatusOK
	if h.Status == HealthFailing {
		code = http.StatusServiceUnavailable
	}
	a.writeJSON(w, code, h)
}

func (a *API) checkMetrics(ctx context.Context, now time.Time) error {
	if a.red.Queryable == nil || a.red.Engine == nil {
		return fmt.Errorf("not configured")
	}
	q, err := a.red.Queryable.Querier(timestamp.FromTime(now.Add(-time.Minute)), timestamp.FromTime(now))
	if err != nil {
		return fmt.Errorf("opening querier: %w", err)
	}
	if _, _, err := q.LabelNames(ctx, nil); err != nil {
		_ = q.Close()
		return fmt.Errorf("reading label names: %w", err)
	}
	return q.Close()
}
