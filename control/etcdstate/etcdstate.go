package etcdstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config is the state store's section of the server config.
type Config struct {
	// Endpoints are the etcd client URLs (http://host:2379).
	Endpoints []string `yaml:"endpoints"`
	// Prefix is where every key lives. Default /meshscope.
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds the first connection. Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// LeaseTTL is the leader's lease: a dead leader is replaced after it.
	// Default 5s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// AuditKeep and EventsKeep bound the shared audit log and guard
	// events (the newest are kept). Defaults 50,000 and 10,000.
	AuditKeep  int `yaml:"audit_keep"`
	EventsKeep int `yaml:"events_keep"`
}

// Defaults.
const (
	DefaultPrefix      = "/meshscope"
	DefaultDialTimeout = 5 * time.Second
	DefaultLeaseTTL    = 5 * time.Second
	DefaultAuditKeep   = 50_000
	DefaultEventsKeep  = 10_000
)

// DefaultConfig returns the defaults (no endpoints).
func DefaultConfig() Config {
	return Config{Prefix: DefaultPrefix, DialTimeout: DefaultDialTimeout, LeaseTTL: DefaultLeaseTTL,
		AuditKeep: DefaultAuditKeep, EventsKeep: DefaultEventsKeep}
}

// Validate names the bad field.
func (c Config) Validate() error {
	switch {
	case len(c.Endpoints) == 0:
		return errors.New("endpoints: at least one etcd endpoint is needed (--etcd-endpoints A,B,C)")
	case !strings.HasPrefix(c.Prefix, "/"):
		return fmt.Errorf("prefix: %q must start with /", c.Prefix)
	case c.DialTimeout <= 0:
		return errors.New("dial_timeout: must be positive")
	case c.LeaseTTL < time.Second:
		return errors.New("lease_ttl: must be at least 1s")
	case c.AuditKeep < 1:
		return errors.New("audit_keep: must be at least 1")
	case c.EventsKeep < 1:
		return errors.New("events_keep: must be at least 1")
	}
	for _, e := range c.Endpoints {
		if e == "" {
			return errors.New("endpoints: an endpoint is empty")
		}
	}
	return nil
}

// Dial connects to etcd and checks that it answers.
func Dial(ctx context.Context, cfg Config, logger *slog.Logger) (*clientv3.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Logger:      zap.NewNop(), // its errors come back to the callers, who log them

	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	cctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(cctx, cfg.Prefix+"/ping"); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("etcd %s does not answer: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	logger.Info("connected to etcd", "endpoints", strings.Join(cfg.Endpoints, ","), "prefix", cfg.Prefix)
	return cli, nil
}
