package topology

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config configures the graph builder, its HTTP API and stream, and the span
// pairing sink. The zero value of a field means its documented default.
type Config struct {
	// DefaultWindow is the window of the live graph and of requests without
	// a window parameter. Default 1m.
	DefaultWindow time.Duration `yaml:"default_window"`
	// MaxWindow bounds the window parameter. Default 7d.
	MaxWindow time.Duration `yaml:"max_window"`
	// StreamWindows are the windows a stream client may ask for (each
	// subscribed window is rebuilt every BuildInterval). Default [1m, 5m, 1h].
	StreamWindows []time.Duration `yaml:"stream_windows"`
	// BuildInterval is how often the live graphs are rebuilt and diffs sent.
	// Default 1s; at least 100ms.
	BuildInterval time.Duration `yaml:"build_interval"`
	// QueryTimeout bounds one graph build. Default 10s.
	QueryTimeout time.Duration `yaml:"query_timeout"`

	// DegradedErrorRate: a node or edge whose error rate (0..1) is at least
	// this is degraded. Default 0.001 (0.1 %, as Kiali).
	DegradedErrorRate float64 `yaml:"degraded_error_rate"`
	// FailingErrorRate: an error rate above this is failing. Default 0.1 (10 %).
	FailingErrorRate float64 `yaml:"failing_error_rate"`

	// AllowedOrigins are browser origins (e.g. "https://ops.example.com")
	// allowed to open the stream besides the server's own host. "*" allows
	// any origin. Default none.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// StreamBuffer is the number of frames queued per stream client; a
	// client whose queue is full is dropped. Default 16.
	StreamBuffer int `yaml:"stream_buffer"`
	// StreamWriteTimeout bounds writing one frame to a client. Default 10s.
	StreamWriteTimeout time.Duration `yaml:"stream_write_timeout"`

	// PairingExpiry is how long an unpaired client or server span waits for
	// its peer. Default 10s.
	PairingExpiry time.Duration `yaml:"pairing_expiry"`
	// PairingMaxPending bounds the unpaired spans held in memory; spans over
	// the bound are counted and dropped. Default 100000.
	PairingMaxPending int `yaml:"pairing_max_pending"`
	// SpanSeriesIdle: span-derived series not updated for this long are no
	// longer appended (they go stale in the TSDB). Default 10m.
	SpanSeriesIdle time.Duration `yaml:"span_series_idle"`

	// EdgeAggregates: every BuildInterval, append per-edge aggregate series
	// (mesh_edge_*) of the raw golden metrics and build graphs from them
	// wherever they cover the window (docs/topology.md, "Edge aggregates").
	// Off: graphs are always computed from the raw golden series. Default
	// true (nil means the default).
	EdgeAggregates *bool `yaml:"edge_aggregates"`
	// AggregateInterval is how often an edge's aggregate duration
	// histogram gets a sample while it has traffic (a new edge gets its
	// first one at the next build; requests, failures and bytes get one at
	// every build). Windows shorter than twice this are computed from the
	// raw series. Default 5s; at least 100ms.
	AggregateInterval time.Duration `yaml:"aggregate_interval"`
	// LiveMemory: keep in memory the per-edge aggregate samples of the
	// last DefaultWindow (exactly what the aggregation steps append) and
	// build the live graphs of windows up to DefaultWindow from them
	// instead of reading the aggregates back from the store. Graphs at an
	// explicit time (replays) always read the store; both sum the same
	// samples in the same order, so they agree. Default true (nil means
	// the default); only with EdgeAggregates.
	LiveMemory *bool `yaml:"live_memory"`
}

// liveMemory is LiveMemory with its default.
func (c Config) liveMemory() bool {
	return c.edgeAggregates() && (c.LiveMemory == nil || *c.LiveMemory)
}

// edgeAggregates is EdgeAggregates with its default.
func (c Config) edgeAggregates() bool { return c.EdgeAggregates == nil || *c.EdgeAggregates }

// Defaults for Config.
const (
	DefaultDefaultWindow      = time.Minute
	DefaultMaxWindow          = 7 * 24 * time.Hour
	DefaultBuildInterval      = time.Second
	DefaultQueryTimeout       = 10 * time.Second
	DefaultDegradedErrorRate  = 0.001
	DefaultFailingErrorRate   = 0.1
	DefaultStreamBuffer       = 16
	DefaultStreamWriteTimeout = 10 * time.Second
	DefaultPairingExpiry      = 10 * time.Second
	DefaultPairingMaxPending  = 100000
	DefaultSpanSeriesIdle     = 10 * time.Minute
	DefaultAggregateInterval  = 5 * time.Second
)

// DefaultStreamWindows is the default of Config.StreamWindows.
var DefaultStreamWindows = []time.Duration{time.Minute, 5 * time.Minute, time.Hour}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.DefaultWindow == 0 {
		c.DefaultWindow = DefaultDefaultWindow
	}
	if c.MaxWindow == 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	if len(c.StreamWindows) == 0 {
		c.StreamWindows = append([]time.Duration(nil), DefaultStreamWindows...)
	}
	if c.BuildInterval == 0 {
		c.BuildInterval = DefaultBuildInterval
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = DefaultQueryTimeout
	}
	if c.DegradedErrorRate == 0 {
		c.DegradedErrorRate = DefaultDegradedErrorRate
	}
	if c.FailingErrorRate == 0 {
		c.FailingErrorRate = DefaultFailingErrorRate
	}
	if c.StreamBuffer == 0 {
		c.StreamBuffer = DefaultStreamBuffer
	}
	if c.StreamWriteTimeout == 0 {
		c.StreamWriteTimeout = DefaultStreamWriteTimeout
	}
	if c.PairingExpiry == 0 {
		c.PairingExpiry = DefaultPairingExpiry
	}
	if c.PairingMaxPending == 0 {
		c.PairingMaxPending = DefaultPairingMaxPending
	}
	if c.SpanSeriesIdle == 0 {
		c.SpanSeriesIdle = DefaultSpanSeriesIdle
	}
	if c.AggregateInterval == 0 {
		c.AggregateInterval = DefaultAggregateInterval
	}
	return c
}

// Validate checks c (after defaults are applied) and names the bad key.
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DefaultWindow < time.Second {
		bad("default_window", "%s is below 1s", c.DefaultWindow)
	}
	if c.MaxWindow < c.DefaultWindow {
		bad("max_window", "%s is below default_window %s", c.MaxWindow, c.DefaultWindow)
	}
	for _, w := range c.StreamWindows {
		if w < time.Second || w > c.MaxWindow {
			bad("stream_windows", "%s is outside 1s..max_window (%s)", w, c.MaxWindow)
		}
	}
	if c.BuildInterval < 100*time.Millisecond {
		bad("build_interval", "%s is below 100ms", c.BuildInterval)
	}
	if c.QueryTimeout < 0 {
		bad("query_timeout", "negative")
	}
	if c.DegradedErrorRate < 0 || c.DegradedErrorRate > 1 {
		bad("degraded_error_rate", "%v is outside 0..1", c.DegradedErrorRate)
	}
	if c.FailingErrorRate < 0 || c.FailingErrorRate > 1 {
		bad("failing_error_rate", "%v is outside 0..1", c.FailingErrorRate)
	}
	if c.FailingErrorRate < c.DegradedErrorRate {
		bad("failing_error_rate", "%v is below degraded_error_rate %v", c.FailingErrorRate, c.DegradedErrorRate)
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" {
			bad("allowed_origins", "%q is not an origin like https://host:port", o)
		}
	}
	if c.StreamBuffer < 1 {
		bad("stream_buffer", "%d is below 1", c.StreamBuffer)
	}
	if c.StreamWriteTimeout < 0 {
		bad("stream_write_timeout", "negative")
	}
	if c.PairingExpiry < 0 {
		bad("pairing_expiry", "negative")
	}
	if c.PairingMaxPending < 1 {
		bad("pairing_max_pending", "%d is below 1", c.PairingMaxPending)
	}
	if c.SpanSeriesIdle < 0 {
		bad("span_series_idle", "negative")
	}
	if c.AggregateInterval < 100*time.Millisecond {
		bad("aggregate_interval", "%s is below 100ms", c.AggregateInterval)
	}
	return errors.Join(errs...)
}
