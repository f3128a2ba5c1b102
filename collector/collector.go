package collector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"

	"github.com/meshscope/meshscope/collector/batch"
	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/otlp"
)

// Sinks are where the collector delivers what it receives.
type Sinks struct {
	// Spans takes every accepted span batch; its nil return is the
	// acknowledgement sent to the client. Usually consumer.FanOut{traceStore,
	// topologyBuilder}. Required.
	Spans consumer.Spans
	// Metrics takes OTLP and remote-write samples. The embedded
	// *metricstore.Store (a *tsdb.DB) is one. Required.
	Metrics storage.AppendableV2
	// Metadata takes the metric metadata of remote write 1.0 requests,
	// which carry it apart from the samples (OTLP and remote write 2.0 pass
	// it with each sample to Metrics). Optional.
	Metadata MetadataSink
}

// MetadataSink records a metric family's metadata.
type MetadataSink interface {
	SetMetadata(family string, md metadata.Metadata)
}

// Collector runs the receivers and the batching stage.
type Collector struct {
	cfg    Config
	logger *slog.Logger
	sinks  Sinks
	batch  *batch.Batcher
	mw     *otlp.MetricsWriter
	m      *metrics

	inflight chan struct{} // one token per request being decoded or waiting for its ack
	mem      *memLimiter   // estimated memory of the requests in progress
	// lingering bounds the refused requests whose body is drained after
	// the answer (refuseUnread).
	lingering chan struct{}

	grpcLn, httpLn net.Listener
	grpcSrv        *grpc.Server
	grpcHTTP       *http.Server // serves grpcSrv over HTTP/2 (cleartext) through serveGRPC
	httpSrv        *http.Server
	remoteWrite    http.Handler
}

// New validates cfg and binds the OTLP listeners (so a port in use fails
// here, naming the address and its flag). Run serves them.
func New(cfg Config, sinks Sinks, reg prometheus.Registerer, logger *slog.Logger) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("collector config: %w", err)
	}
	if sinks.Spans == nil || sinks.Metrics == nil {
		return nil, errors.New("collector: Sinks.Spans and Sinks.Metrics are required")
	}
	// Prometheus' remote-write receiver appends exemplars separately: a
	// metrics sink that cannot would answer 500 to every write.
	probe := sinks.Metrics.AppenderV2(context.Background())
	_, ok := probe.(storage.ExemplarAppenderV2)
	_ = probe.Rollback()
	if !ok {
		return nil, fmt.Errorf("collector: Sinks.Metrics appender %T is not a storage.ExemplarAppenderV2 (remote write needs one)", probe)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	cfg = cfg.withDefaults()
	b, err := batch.New(cfg.Batch, sinks.Spans, reg, logger)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	c := &Collector{
		cfg:    cfg,
		logger: logger,
		sinks:  sinks,
		batch:  b,
		mw:     otlp.NewMetricsWriter(sinks.Metrics, cfg.Delta, logger),
		m:      m,

		inflight: make(chan struct{}, cfg.MaxConcurrentRequests),
		mem:      &memLimiter{max: cfg.MaxInflightBytes},

		lingering: make(chan struct{}, 4*cfg.MaxConcurrentRequests),
	}
	if err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshscope_collector_inflight_bytes",
		Help: "Estimated memory reserved by the ingest requests in progress (bounded by max_inflight_bytes).",
	}, func() float64 { return float64(c.mem.used.Load()) })); err != nil {
		return nil, fmt.Errorf("collector: register metrics: %w", err)
	}
	c.remoteWrite = remote.NewWriteHandler(logger, reg, sinks.Metrics,
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType}, false, true)

	if cfg.OTLPGRPC != Off {
		ln, err := net.Listen("tcp", cfg.OTLPGRPC)
		if err != nil {
			return nil, fmt.Errorf("OTLP gRPC listener on %s (flag --otlp-grpc): %w", cfg.OTLPGRPC, err)
		}
		c.grpcLn = ln
	}
	if cfg.OTLPHTTP != Off {
		ln, err := net.Listen("tcp", cfg.OTLPHTTP)
		if err != nil {
			if c.grpcLn != nil {
				c.grpcLn.Close()
			}
			return nil, fmt.Errorf("OTLP HTTP listener on %s (flag --otlp-http): %w", cfg.OTLPHTTP, err)
		}
		c.httpLn = ln
	}
	c.grpcSrv = grpc.NewServer(
		grpc.MaxRecvMsgSize(int(cfg.MaxRequestBytes)),
		grpc.ForceServerCodecV2(ingestCodec{proto: encoding.GetCodecV2("proto")}),
	)
	c.grpcSrv.RegisterService(traceServiceDesc, c)
	c.grpcSrv.RegisterService(metricsServiceDesc, c)
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true) // gRPC with prior knowledge, as OTLP exporters connect
	c.grpcHTTP = &http.Server{
		Handler:           http.HandlerFunc(c.serveGRPC),
		Protocols:         &h2c,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: cfg.MaxConcurrentRequests},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", c.handleHTTPTraces)
	mux.HandleFunc("POST /v1/metrics", c.handleHTTPMetrics)
	c.httpSrv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return c, nil
}

// Secure puts wrap (authentication) in front of both OTLP listeners and,
// with a non-nil tlsCfg, serves them over TLS (OTLP/gRPC then speaks
// HTTP/2 over TLS). Call before Run.
func (c *Collector) Secure(wrap func(http.Handler) http.Handler, tlsCfg *tls.Config) {
	if wrap != nil {
		c.grpcHTTP.Handler = wrap(c.grpcHTTP.Handler)
		c.httpSrv.Handler = wrap(c.httpSrv.Handler)
	}
	if tlsCfg == nil {
		return
	}
	if c.grpcLn != nil {
		g := tlsCfg.Clone()
		g.NextProtos = []string{"h2"}
		c.grpcLn = tls.NewListener(c.grpcLn, g)
		var p http.Protocols
		p.SetHTTP2(true)
		c.grpcHTTP.Protocols = &p
	}
	if c.httpLn != nil {
		h := tlsCfg.Clone()
		h.NextProtos = []string{"h2", "http/1.1"}
		c.httpLn = tls.NewListener(c.httpLn, h)
	}
}

// GRPCAddr is the bound OTLP/gRPC address ("" when off).
func (c *Collector) GRPCAddr() string {
	if c.grpcLn == nil {
		return ""
	}
	return c.grpcLn.Addr().String()
}

// HTTPAddr is the bound OTLP/HTTP address ("" when off).
func (c *Collector) HTTPAddr() string {
	if c.httpLn == nil {
		return ""
	}
	return c.httpLn.Addr().String()
}

// Spans is the entry of the span pipeline (the batching stage). Other
// in-process span sources may feed it; it applies the same overload bound.
func (c *Collector) Spans() consumer.Spans { return c.batch }

// RegisterRoutes adds the receivers served on the main HTTP server:
// Prometheus remote write (POST /api/v1/write) and OTLP/HTTP under
// Prometheus' path (POST /api/v1/otlp/v1/metrics) plus the OTLP/HTTP paths
// under /otlp (POST /otlp/v1/traces, /otlp/v1/metrics).
func (c *Collector) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/write", c.handleRemoteWrite)
	mux.HandleFunc("POST /api/v1/otlp/v1/metrics", c.handleHTTPMetrics)
	mux.HandleFunc("POST /otlp/v1/traces", c.handleHTTPTraces)
	mux.HandleFunc("POST /otlp/v1/metrics", c.handleHTTPMetrics)
}

// Run serves the listeners until ctx is cancelled, then stops taking new
// requests, waits for in-flight ones (each waits for its acknowledgement),
// drains the batching stage and returns. Sinks must stay open until Run
// returns.
func (c *Collector) Run(ctx context.Context) error {
	bctx, stopBatch := context.WithCancel(context.WithoutCancel(ctx))
	batchDone := make(chan error, 1)
	go func() { batchDone <- c.batch.Run(bctx) }()
	if c.cfg.SoftMemoryLimit {
		lctx, stopLimit := context.WithCancel(bctx)
		limitDone := make(chan struct{})
		go func() { defer close(limitDone); c.runSoftMemoryLimit(lctx) }()
		defer func() { stopLimit(); <-limitDone }()
	}

	errc := make(chan error, 2)
	var wg sync.WaitGroup
	if c.grpcLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.logger.Info("OTLP gRPC receiver listening", "addr", c.GRPCAddr())
			if err := c.grpcHTTP.Serve(c.grpcLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("OTLP gRPC on %s: %w", c.GRPCAddr(), err)
			}
		}()
	}
	if c.httpLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.logger.Info("OTLP HTTP receiver listening", "addr", c.HTTPAddr())
			if err := c.httpSrv.Serve(c.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("OTLP HTTP on %s: %w", c.HTTPAddr(), err)
			}
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	// Sources first: stop accepting, let in-flight requests finish.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.ShutdownTimeout)
	defer cancel()
	var swg sync.WaitGroup
	for name, srv := range map[string]*http.Server{"OTLP gRPC": c.grpcHTTP, "OTLP HTTP": c.httpSrv} {
		swg.Go(func() {
			if err := srv.Shutdown(sctx); err != nil {
				c.logger.Warn(name+" shutdown", "err", err)
				srv.Close()
			}
		})
	}
	swg.Wait()
	c.grpcSrv.Stop()
	wg.Wait()
	// Then the batching stage: it flushes everything it accepted.
	stopBatch()
	if err := <-batchDone; err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
