package collector

import (
	"fmt"
	"net"
	"time"

	"github.com/meshscope/meshscope/collector/batch"
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
	// MaxConcurrentRequests bounds the OTLP requests being read, decoded
	// or waiting for their acknowledgement at once (gRPC and HTTP together);
	// beyond it requests are refused as overloaded before their body is
	// read, which bounds receiver memory at about this many times
	// max_request_bytes. Default 64.
	MaxConcurrentRequests int `yaml:"max_concurrent_requests"`
	// RetryAfter is the delay suggested to clients refused as overloaded
	// (HTTP Retry-After, gRPC RetryInfo). Default 1s. Unit: duration.
	RetryAfter time.Duration `yaml:"retry_after"`
	// ShutdownTimeout bounds how long Run waits for in-flight requests on
	// shutdown. Default 30s. Unit: duration.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Batch configures the batching stage.
	Batch batch.Config `yaml:"batch"`
}

// Defaults.
const (
	DefaultOTLPGRPC        = "127.0.0.1:4317"
	DefaultOTLPHTTP        = "127.0.0.1:4318"
	DefaultMaxRequestBytes = 16 << 20
	DefaultRetryAfter      = time.Second
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
	case c.RetryAfter < 0:
		return fmt.Errorf("retry_after: %v must not be negative", c.RetryAfter)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("shutdown_timeout: %v must not be negative", c.ShutdownTimeout)
	}
	return c.Batch.Validate()
}
