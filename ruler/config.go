package ruler

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// DefaultEvalInterval is how often rule groups are evaluated by default.
const DefaultEvalInterval = 15 * time.Second

// Config is the rules engine's section of the server config.
type Config struct {
	// RuleFiles are globs of Prometheus rule files. Default none.
	RuleFiles []string `yaml:"rule_files"`
	// EvalInterval is how often every group (without its own interval)
	// is evaluated. Default 15s.
	EvalInterval time.Duration `yaml:"eval_interval"`
	// Alertmanagers are the base URLs alerts are sent to
	// (http://127.0.0.1:9093). Default none.
	Alertmanagers []string `yaml:"alertmanagers"`
	// ExternalURL is the URL the Meshscope UI is reached at; alert links
	// point to it. Default: http://<--http address>.
	ExternalURL string `yaml:"external_url"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{EvalInterval: DefaultEvalInterval} }

// Validate names the bad key.
func (c Config) Validate() error {
	if c.EvalInterval < time.Millisecond {
		return fmt.Errorf("eval_interval: %v: must be at least 1ms", c.EvalInterval)
	}
	for i, g := range c.RuleFiles {
		if _, err := filepath.Match(g, ""); err != nil {
			return fmt.Errorf("rule_files[%d]: %q: %w", i, g, err)
		}
	}
	for i, a := range c.Alertmanagers {
		if _, err := parseAlertmanager(a); err != nil {
			return fmt.Errorf("alertmanagers[%d]: %w", i, err)
		}
	}
	if c.ExternalURL != "" {
		u, err := url.Parse(c.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("external_url: %q: want an http:// or https:// URL", c.ExternalURL)
		}
	}
	return nil
}

func parseAlertmanager(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want an Alertmanager base URL such as http://127.0.0.1:9093", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errors.New(s + ": want no query, fragment or credentials")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}
