package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/meshscope/meshscope/cmd/internal/flagconfig"
	"github.com/meshscope/meshscope/collector/tracestore/clickhouse"
)

type migrateConfig struct {
	ClickHouse clickhouse.Config `yaml:"clickhouse"`
	Apply      bool              `yaml:"apply"`
}

func (c *migrateConfig) Validate() error {
	if err := c.ClickHouse.Validate(); err != nil {
		return fmt.Errorf("clickhouse: %w", err)
	}
	return nil
}

func bindMigrateFlags(fs *flag.FlagSet, c *migrateConfig) {
	fs.StringVar(&c.ClickHouse.DSN, "clickhouse-dsn", c.ClickHouse.DSN, "ClickHouse `dsn` (clickhouse://user:pass@host:9000/db)")
	fs.StringVar(&c.ClickHouse.Cluster, "clickhouse-cluster", c.ClickHouse.Cluster, "ClickHouse `cluster` for replicated tables")
	fs.Var(durationValue{&c.ClickHouse.Retention}, "trace-retention", "trace TTL written into the schema")
	fs.BoolVar(&c.Apply, "apply", c.Apply, "apply the missing migrations (default: only print them)")
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := flagconfig.Parse("meshscope migrate", args, func() migrateConfig {
		return migrateConfig{ClickHouse: clickhouse.Defaults()}
	}, bindMigrateFlags, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshscope migrate: %v\n", err)
		return 2
	}
	if err := clickhouse.Migrate(ctx, cfg.ClickHouse, cfg.Apply, stdout); err != nil {
		fmt.Fprintf(stderr, "meshscope migrate: %v\n", err)
		return 1
	}
	return 0
}
