package metricstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/agent"
)

// Metrics store kinds (Config.Store).
const (
	StoreEmbedded = "embedded"
	StoreRemote   = "remote"
)

// ServerLabel is the label the remote store adds to every series a server
// writes (Prometheus' external labels), so that two servers never write
// the same series: their self-metrics and span-derived series stay apart,
// and PromQL sums over them. Rule outputs do not get it (see ruleOutputs).
const ServerLabel = "meshscope_server"

// ruleOutputs matches the names of the series the ruler writes: recording
// rules (a colon, by Prometheus' naming convention) and the alert series.
const ruleOutputs = `[^;]*:[^;]*|ALERTS|ALERTS_FOR_STATE`

// RemoteConfig configures the shared metrics store (Config.Store "remote").
type RemoteConfig struct {
	// WriteURL receives the samples with Prometheus remote write 1.0
	// (Prometheus' /api/v1/write, Mimir's /api/v1/push, ...). Required.
	WriteURL string `yaml:"write_url"`
	// PrometheusURL is the Prometheus-compatible engine's base URL: PromQL
	// is evaluated there with its HTTP API (/api/v1/query, query_range,
	// labels, label values, series: Remote.Engine), and the raw series the
	// topology sums are read with remote read at <url>/api/v1/read.
	PrometheusURL string `yaml:"prometheus_url"`
	// ReadURL is the remote read endpoint, instead of PrometheusURL: PromQL
	// then runs in the server's own engine over the series read from it
	// (for engines without the HTTP API, or that serve remote read
	// elsewhere, e.g. Mimir's /prometheus/api/v1/read).
	ReadURL string `yaml:"read_url"`
	// Server is the value of the meshscope_server label; unique per server.
	// Default: <hostname>:<HTTP port>.
	Server string `yaml:"server"`
	// MaxShards bounds the parallel senders. Default 50 (Prometheus').
	MaxShards int `yaml:"max_shards"`
	// Capacity is the samples buffered per shard before the queue stops
	// reading the WAL (backpressure). Default 10000.
	Capacity int `yaml:"capacity"`
	// BatchSendDeadline sends a partial batch after this long. Default 1s.
	// Unit: duration.
	BatchSendDeadline time.Duration `yaml:"batch_send_deadline"`
	// Timeout bounds one write or read request. Default 30s. Unit: duration.
	Timeout time.Duration `yaml:"timeout"`
}

// flushDeadline bounds the queue's last sends on Close.
const flushDeadline = 10 * time.Second

// Defaults of RemoteConfig.
const (
	DefaultRemoteMaxShards         = 50
	DefaultRemoteCapacity          = 10000
	DefaultRemoteBatchSendDeadline = time.Second
	DefaultRemoteTimeout           = 30 * time.Second
)

// Validate names the first bad field.
func (c *RemoteConfig) Validate() error {
	if c.WriteURL == "" {
		return errors.New("metrics.remote.write_url (--remote-write-url): must be set with --metrics-store remote")
	}
	if err := checkHTTPURL(c.WriteURL); err != nil {
		return fmt.Errorf("metrics.remote.write_url (--remote-write-url): %w", err)
	}
	switch {
	case c.PrometheusURL == "" && c.ReadURL == "":
		return errors.New("metrics.remote.prometheus_url (--prometheus-url) or metrics.remote.read_url (--remote-read-url): one must be set with --metrics-store remote")
	case c.PrometheusURL != "" && c.ReadURL != "":
		return errors.New("metrics.remote.read_url (--remote-read-url): set either it or --prometheus-url, not both")
	}
	if c.PrometheusURL != "" {
		if err := checkHTTPURL(c.PrometheusURL); err != nil {
			return fmt.Errorf("metrics.remote.prometheus_url (--prometheus-url): %w", err)
		}
	}
	if c.ReadURL != "" {
		if err := checkHTTPURL(c.ReadURL); err != nil {
			return fmt.Errorf("metrics.remote.read_url (--remote-read-url): %w", err)
		}
	}
	switch {
	case c.MaxShards < 0:
		return fmt.Errorf("metrics.remote.max_shards: %d must not be negative", c.MaxShards)
	case c.Capacity < 0:
		return fmt.Errorf("metrics.remote.capacity: %d must not be negative", c.Capacity)
	case c.BatchSendDeadline < 0:
		return fmt.Errorf("metrics.remote.batch_send_deadline: %v must not be negative", c.BatchSendDeadline)
	case c.Timeout < 0:
		return fmt.Errorf("metrics.remote.timeout: %v must not be negative", c.Timeout)
	case strings.ContainsAny(c.Server, "\n\""):
		return fmt.Errorf("metrics.remote.server: %q must not hold quotes or newlines", c.Server)
	}
	return nil
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q must be an http:// or https:// URL with a host", s)
	}
	return nil
}

// readURL is the remote read endpoint.
func (c *RemoteConfig) readURL() string {
	if c.ReadURL != "" {
		return c.ReadURL
	}
	return strings.TrimSuffix(c.PrometheusURL, "/") + "/api/v1/read"
}

// Remote is the shared metrics store: what the server appends goes to a
// write-ahead log in Dir (Prometheus' agent storage) that Prometheus'
// remote-write queue manager tails and sends, sharded, batched and retried,
// to WriteURL; reads go to the remote engine with remote read. Like Store it
// is a storage.Appendable, storage.AppendableV2 and storage.Queryable, so
// the PromQL engine, the ruler, the topology and the native tables work on
// it unchanged. The queue's metrics are Prometheus' own
// (prometheus_remote_storage_*: samples pending, retried, failed, dropped,
// shards, highest timestamps sent and appended).
type Remote struct {
	db     *agent.DB
	app    storage.Storage // db, and rs for the highest timestamp appended (the queues' lag)
	rs     *remote.Storage
	read   storage.SampleAndChunkQueryable
	query  storage.Queryable // read, with the HTTP API for labels and series (PrometheusURL)
	engine *RemoteEngine     // the HTTP API's PromQL (PrometheusURL); nil with ReadURL
	rm     *remoteMetrics
	meta   *metadataStore
	logger *slog.Logger
}

// OpenRemote opens the WAL in dir and starts the remote-write queue. The
// queue's and the WAL's metrics go to reg.
func OpenRemote(cfg RemoteConfig, dir string, reg prometheus.Registerer, logger *slog.Logger) (*Remote, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry() // metrics nobody gathers
	}
	if cfg.Server == "" {
		return nil, errors.New("metrics.remote.server: must be set (the server fills in <hostname>:<port>)")
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.MaxShards, DefaultRemoteMaxShards)
	def(&cfg.Capacity, DefaultRemoteCapacity)
	if cfg.BatchSendDeadline == 0 {
		cfg.BatchSendDeadline = DefaultRemoteBatchSendDeadline
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultRemoteTimeout
	}
	writeURL, _ := url.Parse(cfg.WriteURL)
	readURL, err := url.Parse(cfg.readURL())
	if err != nil {
		return nil, fmt.Errorf("metrics.remote: read URL %q: %w", cfg.readURL(), err)
	}

	latest := func() (int64, error) { return int64(model.Latest), nil }
	// On Close the queue gets flushDeadline to send what it holds; the rest
	// stays in the WAL (and is not resent: see docs/scale-out.md).
	rs := remote.NewStorage(logger.With("component", "remote"), reg, latest, dir, flushDeadline, nil, false)
	wcfg := config.DefaultRemoteWriteConfig
	wcfg.URL = &config_util.URL{URL: writeURL}
	wcfg.Name = "shared"
	wcfg.RemoteTimeout = model.Duration(cfg.Timeout)
	wcfg.SendNativeHistograms = true
	wcfg.SendExemplars = true
	wcfg.MetadataConfig.Send = false // kept by the server (/api/v1/metadata)
	wcfg.QueueConfig.MaxShards = cfg.MaxShards
	wcfg.QueueConfig.Capacity = cfg.Capacity
	wcfg.QueueConfig.BatchSendDeadline = model.Duration(cfg.BatchSendDeadline)
	wcfg.QueueConfig.RetryOnRateLimit = true // a 429 is backpressure: retry, do not drop
	// Rule outputs (recording rules are named with a colon, and the alert
	// series) are the cluster's, evaluated by the leader only: they keep one
	// series when leadership moves (applied after the external labels).
	wcfg.WriteRelabelConfigs = []*relabel.Config{{
		SourceLabels:         model.LabelNames{labels.MetricName, ServerLabel},
		Separator:            ";",
		Regex:                relabel.MustNewRegexp("(?:" + ruleOutputs + ");.*"), // the name, then the server's host:port
		TargetLabel:          ServerLabel,
		Replacement:          "",
		Action:               relabel.Replace,
		NameValidationScheme: model.UTF8Validation,
	}}
	global := config.DefaultGlobalConfig
	global.ExternalLabels = labels.FromStrings(ServerLabel, cfg.Server)
	rm, err := newRemoteMetrics(reg)
	if err != nil {
		_ = rs.Close()
		return nil, err
	}
	rc, err := remote.NewReadClient("shared", &remote.ClientConfig{
		URL:              &config_util.URL{URL: readURL},
		Timeout:          model.Duration(cfg.Timeout),
		HTTPClientConfig: config_util.DefaultHTTPClientConfig,
		ChunkedReadLimit: config.DefaultChunkedReadLimit,
	}, config_util.WithDialContextFunc(rm.dialer(apiRead)))
	if err != nil {
		_ = rs.Close()
		return nil, fmt.Errorf("metrics.remote: remote read client for %s: %w", readURL, err)
	}
	// Prometheus' read client registers its metrics with the default
	// registry; the server's /metrics shows this endpoint's.
	if err := reg.Register(readClientMetrics{endpoint: readURL.String(), gatherer: prometheus.DefaultGatherer}); err != nil {
		_ = rs.Close()
		return nil, fmt.Errorf("metrics.remote: registering the remote read client metrics: %w", err)
	}
	if c, ok := rc.(*remote.Client); ok {
		c.Client.Transport = rm.transport(apiRead, c.Client.Transport)
	}
	var engine *RemoteEngine
	if cfg.PrometheusURL != "" {
		if engine, err = NewRemoteEngine(cfg.PrometheusURL, rm.httpTransport(apiQuery)); err != nil {
			_ = rs.Close()
			return nil, fmt.Errorf("metrics.remote: %w", err)
		}
	}

	opts := agent.DefaultOptions()
	opts.OutOfOrderTimeWindow = DefaultOutOfOrderWindow.Milliseconds()
	db, err := agent.Open(logger.With("component", "wal"), reg, rs, dir, opts)
	if err != nil {
		_ = rs.Close()
		return nil, fmt.Errorf("open remote-write WAL in %s: %w", filepath.Join(dir, "wal"), err)
	}
	db.SetWriteNotified(rs)
	// The queue starts tailing the WAL now that it exists (as Prometheus
	// applies its configuration once the storage is open): a watcher that
	// finds no WAL retries 5 s later and skips what was appended meanwhile.
	if err := rs.ApplyConfig(&config.Config{GlobalConfig: global, RemoteWriteConfigs: []*config.RemoteWriteConfig{&wcfg}}); err != nil {
		_ = db.Close()
		_ = rs.Close()
		return nil, fmt.Errorf("metrics.remote: starting remote write to %s: %w", cfg.WriteURL, err)
	}

	meta, err := openMetadata(dir, DefaultMaxMetadata)
	if err != nil {
		_ = db.Close()
		_ = rs.Close()
		return nil, err
	}
	read := remote.NewSampleAndChunkQueryableClient(rc, labels.EmptyLabels(), nil, true, latest)
	var query storage.Queryable = read
	if engine != nil {
		query = apiQueryable{read: read, api: engine.api, url: engine.url}
	}
	return &Remote{
		db: db, rs: rs, meta: meta, logger: logger, engine: engine, query: query, rm: rm,
		// As Prometheus in agent mode: samples go to the WAL, and the remote
		// storage's appender records the highest timestamp appended, so
		// prometheus_remote_storage_highest_timestamp_in_seconds minus
		// ..._queue_highest_sent_timestamp_seconds is the queue's lag.
		app: storage.NewFanout(logger, db, rs),
		// Every query reads the remote engine: this server holds no samples.
		read: read,
	}, nil
}

// Appender appends to the WAL; the queue sends what commits.
func (r *Remote) Appender(ctx context.Context) storage.Appender { return r.app.Appender(ctx) }

// AppenderV2 appends to the WAL and records the samples' metadata.
func (r *Remote) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &metaAppender{next: r.app.AppenderV2(ctx), meta: r}
}

// Engine is the remote engine's PromQL over its HTTP API with
// --prometheus-url, nil with --remote-read-url (PromQL then runs locally
// over Querier).
func (r *Remote) Engine() *RemoteEngine { return r.engine }

// Querier reads the remote engine's series with remote read; with
// --prometheus-url label names, label values and series lists come from its
// HTTP API. Errors of the remote engine are errors of the query, not
// warnings.
func (r *Remote) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := r.query.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("remote read: %w", err)
	}
	return q, nil
}

// ChunkQuerier reads the remote engine's chunks with remote read.
func (r *Remote) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return r.read.ChunkQuerier(mint, maxt)
}

// SetMetadata records a metric family's metadata (type, unit, help).
func (r *Remote) SetMetadata(family string, md metadata.Metadata) {
	if err := r.meta.set(family, md); err != nil {
		r.logger.Warn("saving metric metadata failed", "err", err)
	}
}

// MetricMetadata returns the recorded metadata by metric family.
func (r *Remote) MetricMetadata() map[string]metadata.Metadata { return r.meta.all() }

// Close closes the WAL, then flushes the queue (up to 10 s) and stops it.
func (r *Remote) Close() error {
	merr := r.meta.save()
	return errors.Join(r.db.Close(), r.rs.Close(), merr)
}
