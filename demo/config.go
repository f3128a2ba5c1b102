package demo

import (
	"fmt"
	"net"
	"time"
)

// Defaults of Config.
const (
	DefaultHTTPAddr     = "127.0.0.1:7070"
	DefaultDataDir      = "./data/demo"
	DefaultRate         = 20.0
	DefaultReadyTimeout = 60 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// Config of the demo. The zero value of every field means its default.
type Config struct {
	// HTTPAddr is the server's --http address (UI and APIs).
	// Default 127.0.0.1:7070. Port 0 picks a free port.
	HTTPAddr string `yaml:"http_addr"`
	// DataDir is the server's --data directory; child logs go to DataDir/logs.
	// Default ./data/demo.
	DataDir string `yaml:"data_dir"`
	// ServerBinary is the meshscope binary started as `meshscope server`.
	// Default: the running executable (os.Executable).
	ServerBinary string `yaml:"server_binary"`
	// ProxyBinary is the meshscope-proxy binary. Default: meshscope-proxy next
	// to the running executable, else the one on $PATH.
	ProxyBinary string `yaml:"proxy_binary"`
	// ServerConfig, when set, is passed to the server as --config FILE.
	ServerConfig string `yaml:"server_config"`
	// Rate is the load generator's request rate in requests per second.
	// Default 20. Negative disables the load.
	Rate float64 `yaml:"rate"`
	// Duration is how long the demo runs once everything is up; 0 runs
	// until ctx is cancelled (Ctrl-C). Default 0.
	Duration time.Duration `yaml:"duration"`
	// ReadyTimeout bounds the wait for the server's and each proxy's /ready.
	// Default 60s.
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
	// NoAuth runs the server without an auth file (every caller an admin).
	// Default false: the server runs with a generated admin token, printed
	// at start.
	NoAuth bool `yaml:"no_auth"`
	// StopTimeout is how long a child gets after SIGTERM before SIGKILL.
	// Default 10s.
	StopTimeout time.Duration `yaml:"stop_timeout"`
	// Scenario starts a rollout of inventory v2: "canary" (v2 as healthy
	// as v1, promoted within a few minutes) or "bad-canary" (v2 fails 5 %
	// and is rolled back). Default none.
	Scenario string `yaml:"scenario"`
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return c
}

// Validate reports the first invalid field, by its YAML key.
func (c Config) Validate() error {
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("http_addr %q: %w", c.HTTPAddr, err)
		}
	}
	if c.Rate > 1000 {
		return fmt.Errorf("rate %g: at most 1000 requests per second", c.Rate)
	}
	if c.Duration < 0 {
		return fmt.Errorf("duration %s: must not be negative", c.Duration)
	}
	if c.ReadyTimeout < 0 {
		return fmt.Errorf("ready_timeout %s: must not be negative", c.ReadyTimeout)
	}
	if err := validScenario(c.Scenario); err != nil {
		return err
	}
	if c.StopTimeout < 0 {
		return fmt.Errorf("stop_timeout %s: must not be negative", c.StopTimeout)
	}
	return nil
}
