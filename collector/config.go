package collector

import (
	"fmt"
	"net"
	"time"

	"github.com/meshscope/meshscope/collector/batch"
	"github.com/meshscope/meshscope/collector/otlp"
)

// Config configures the receivers and the batching stage.
type Config struct {
	// OTLPGRPC is the OTLP/gRPC listen address (flag --otlp-grpc). Default
	// 127.0.0.1:4317. "off" disables the listener.
	OTLPGRPC string `yaml:"otlp_grpc"`
	// OTLPHTTP is the OTLP/HTTP listen address (flag --otlp-http). Default
	// 127.0.0.1:4318. "off" disables the listener.
	OTLPHTTP string `yaml:"otlp_http"`
	// MaxRequestBytes is the largest accepted request body or gRPC message,
	// after decompression. Default 16 MiB. Unit: bytes.
	MaxRequestBytes int64 `yaml:"max_request_bytes"`
	// MaxConcurrentRequests bounds the OTLP requests being decoded or
	// waiting for their acknowledgement at once (gRPC and HTTP together).
	// A request takes its slot once its body is in (reading is bounded by
	// max_inflight_bytes and the body deadlines, so slow clients hold no
	// slot); beyond it requests are refused as overloaded. It also bounds
	// the concurrent gRPC streams of one connection. Default 64.
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// MaxInflightBytes bounds the estimated memory of the ingest requests in
	// progress (OTLP/HTTP, OTLP/gRPC and remote write together): bytes are
	// reserved as a body arrives (its declared Content-Length at once, gzip
	// bodies by their decompressed size as they inflate), at 8 bytes of
	// memory per body byte, and released when the request is answered.
	// A request that does not fit is refused as overloaded (429 /
	// RESOURCE_EXHAUSTED) before more of it is read or decoded. Default
	// 512 MiB (sized for a server with 2 GB of memory; flag
	// --ingest-max-inflight-bytes). Unit: bytes.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// SoftMemoryLimit keeps Go's soft memory limit (debug.SetMemoryLimit)
	// at the live heap that is not ingest + max_inflight_bytes + 128 MiB
	// while the collector runs, so the garbage of answered requests does
	// not push the process far past max_inflight_bytes between collections.
	// Process-wide: the server turns it on (flag
	// --ingest-soft-memory-limit, default true); GOMEMLIMIT, when set,
	// wins. Default false in the library.
	SoftMemoryLimit bool `yaml:"soft_memory_limit"`
	// BodyTimeout bounds the time to receive a whole request body or gRPC
	// message. Default 30s. Unit: duration.
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// MinBodyRate is the average rate, in bytes per second, at which an
	// HTTP request body must arrive after a 5 s grace period; slower
	// clients are cut with 408. Default 16384 (16 KiB/s).
	MinBodyRate int64 `yaml:"min_body_rate"`
	// RetryAfter is the delay suggested to clients refused as overloaded
	// (HTTP Retry-After, gRPC RetryInfo). Default 1s. Unit: duration.
	RetryAfter time.Duration `yaml:"retry_after"`
	// ShutdownTimeout bounds how long Run waits for in-flight requests on
	// shutdown. Default 30s. Unit: duration.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Batch configures the batching stage.
	Batch batch.Config `yaml:"batch"`
	// Delta bounds the delta-to-cumulative conversion of OTLP metrics.
	Delta otlp.DeltaConfig `yaml:"delta"`
}

// Defaults.
const (
	DefaultOTLPGRPC        = "127.0.0.1:4317"
	DefaultOTLPHTTP        = "127.0.0.1:4318"
	DefaultMaxRequestBytes = 16 << 20
	DefaultRetryAfter      = time.Second
	// DefaultMaxInflightBytes is the default of MaxInflightBytes.
	DefaultMaxInflightBytes = 512 << 20
	// DefaultBodyTimeout is the default of BodyTimeout.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultMinBodyRate is the default of MinBodyRate.
	DefaultMinBodyRate = 16 << 10
	// DefaultMaxConcurrentRequests is the default of MaxConcurrentRequests.
	DefaultMaxConcurrentRequests = 64
	DefaultShutdownTimeout       = 30 * time.Second
	// Off disables a listener.
	Off = "off"
)

func (c Config) withDefaults() Config {
	if c.OTLPGRPC == "" {
		c.OTLPGRPC = DefaultOTLPGRPC
	}
	if c.OTLPHTTP == "" {
		c.OTLPHTTP = DefaultOTLPHTTP
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if c.BodyTimeout == 0 {
		c.BodyTimeout = DefaultBodyTimeout
	}
	if c.MinBodyRate == 0 {
		c.MinBodyRate = DefaultMinBodyRate
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.MaxConcurrentRequests == 0 {
		c.MaxConcurrentRequests = DefaultMaxConcurrentRequests
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	for _, a := range []struct{ key, addr string }{{"otlp_grpc", c.OTLPGRPC}, {"otlp_http", c.OTLPHTTP}} {
		if a.addr == "" || a.addr == Off {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s: %q is not host:port: %w", a.key, a.addr, err)
		}
	}
	switch {
	case c.MaxRequestBytes < 0:
		return fmt.Errorf("max_request_bytes: %d must not be negative", c.MaxRequestBytes)
	case c.MaxRequestBytes > 1<<30:
		return fmt.Errorf("max_request_bytes: %d above the 1 GiB maximum", c.MaxRequestBytes)
	case c.MaxConcurrentRequests < 0:
		return fmt.Errorf("max_concurrent_requests: %d must not be negative", c.MaxConcurrentRequests)
	case c.MaxInflightBytes < 0:
		return fmt.Errorf("max_inflight_bytes: %d must not be negative", c.MaxInflightBytes)
	case c.MaxInflightBytes > 0 && c.MaxInflightBytes < 1<<20:
		return fmt.Errorf("max_inflight_bytes: %d is below the minimum of 1 MiB", c.MaxInflightBytes)
	case c.BodyTimeout < 0:
		return fmt.Errorf("body_timeout: %v must not be negative", c.BodyTimeout)
	case c.BodyTimeout > 0 && c.BodyTimeout < time.Second:
		return fmt.Errorf("body_timeout: %v is below the minimum of 1s", c.BodyTimeout)
	case c.MinBodyRate < 0:
		return fmt.Errorf("min_body_rate: %d must not be negative", c.MinBodyRate)
	case c.RetryAfter < 0:
		return fmt.Errorf("retry_after: %v must not be negative", c.RetryAfter)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("shutdown_timeout: %v must not be negative", c.ShutdownTimeout)
	}
	if err := c.Delta.Validate(); err != nil {
		return fmt.Errorf("delta.%w", err)
	}
	return c.Batch.Validate()
}
