package query

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"

	"github.com/meshscope/meshscope/query/promapi"
)

// Config configures the query layer (YAML key `query` of the server config).
type Config struct {
	// Timeout bounds the evaluation of one PromQL query and one trace
	// search. Default 2m (Prometheus' --query.timeout default). A request's
	// `timeout` parameter can only shorten it.
	Timeout time.Duration `yaml:"timeout"`
	// MaxSamples is the most samples one PromQL query may hold in memory
	// (Prometheus' --query.max-samples). Default 50000000. Applied through
	// EngineOpts, since the limit lives in the engine.
	MaxSamples int `yaml:"max_samples"`
	// LookbackDelta is how far back an instant selector looks for a sample.
	// Default 5m (Prometheus' --query.lookback-delta). Applied through EngineOpts.
	LookbackDelta time.Duration `yaml:"lookback_delta"`
	// MaxTraces caps the `limit` of a trace search (Jaeger and native API).
	// Default 1500 traces.
	MaxTraces int `yaml:"max_traces"`
	// MaxQueryLength is the longest PromQL expression admitted, in bytes,
	// checked before parsing. Default 262144 (256 KiB).
	MaxQueryLength int `yaml:"max_query_length"`
	// MaxQueryNodes is the most syntax nodes a PromQL expression may have,
	// counted as lexical tokens before parsing (an upper bound of the
	// nodes). Default 10000.
	MaxQueryNodes int `yaml:"max_query_nodes"`
	// ProxyWindow is how recently a proxy must have reported
	// meshscope_proxy_info to count as reporting in /api/mesh/health.
	// Default 2m.
	ProxyWindow time.Duration `yaml:"proxy_window"`
}

// Defaults.
const (
	DefaultTimeout        = 2 * time.Minute
	DefaultMaxSamples     = 50_000_000
	DefaultLookbackDelta  = 5 * time.Minute
	DefaultMaxTraces      = 1500
	DefaultProxyWindow    = 2 * time.Minute
	DefaultMaxQueryLength = promapi.DefaultMaxQueryLength
	DefaultMaxQueryNodes  = promapi.DefaultMaxQueryNodes
)

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Timeout:        DefaultTimeout,
		MaxSamples:     DefaultMaxSamples,
		LookbackDelta:  DefaultLookbackDelta,
		MaxTraces:      DefaultMaxTraces,
		ProxyWindow:    DefaultProxyWindow,
		MaxQueryLength: DefaultMaxQueryLength,
		MaxQueryNodes:  DefaultMaxQueryNodes,
	}
}

// withDefaults fills zero fields with their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxSamples == 0 {
		c.MaxSamples = d.MaxSamples
	}
	if c.LookbackDelta == 0 {
		c.LookbackDelta = d.LookbackDelta
	}
	if c.MaxTraces == 0 {
		c.MaxTraces = d.MaxTraces
	}
	if c.ProxyWindow == 0 {
		c.ProxyWindow = d.ProxyWindow
	}
	if c.MaxQueryLength == 0 {
		c.MaxQueryLength = d.MaxQueryLength
	}
	if c.MaxQueryNodes == 0 {
		c.MaxQueryNodes = d.MaxQueryNodes
	}
	return c
}

// Validate reports the first bad field by its YAML key.
func (c Config) Validate() error {
	var errs []error
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("query.timeout: must not be negative, got %s", c.Timeout))
	}
	if c.MaxSamples < 0 {
		errs = append(errs, fmt.Errorf("query.max_samples: must not be negative, got %d", c.MaxSamples))
	}
	if c.LookbackDelta < 0 {
		errs = append(errs, fmt.Errorf("query.lookback_delta: must not be negative, got %s", c.LookbackDelta))
	}
	if c.MaxTraces < 0 {
		errs = append(errs, fmt.Errorf("query.max_traces: must not be negative, got %d", c.MaxTraces))
	}
	if c.ProxyWindow < 0 {
		errs = append(errs, fmt.Errorf("query.proxy_window: must not be negative, got %s", c.ProxyWindow))
	}
	if c.MaxQueryLength < 0 {
		errs = append(errs, fmt.Errorf("query.max_query_length: must not be negative, got %d", c.MaxQueryLength))
	}
	if c.MaxQueryNodes < 0 {
		errs = append(errs, fmt.Errorf("query.max_query_nodes: must not be negative, got %d", c.MaxQueryNodes))
	}
	return errors.Join(errs...)
}

// EngineOpts returns the PromQL engine options matching c (timeout, sample
// limit, lookback delta, @ modifier and negative offsets enabled as in
// Prometheus 3). The server builds its one engine with
// promql.NewEngine(cfg.EngineOpts(reg, logger)) so the limits configured here
// are the engine's.
func (c Config) EngineOpts(reg prometheus.Registerer, logger *slog.Logger) promql.EngineOpts {
	c = c.withDefaults()
	return promql.EngineOpts{
		Logger:               logger,
		Reg:                  reg,
		MaxSamples:           c.MaxSamples,
		Timeout:              c.Timeout,
		LookbackDelta:        c.LookbackDelta,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return time.Minute.Milliseconds()
		},
	}
}
