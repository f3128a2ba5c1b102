//go:build chdb

package clickhouse

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chdb"
)

// OpenOnEngine opens the store on the in-process ClickHouse engine of
// libchdb (libPath) with its data in dataDir, creating the DSN's database.
// It exists for tests and benchmarks (build tag chdb); the engine is one
// per process, so every store of a process must use the same dataDir.
func OpenOnEngine(ctx context.Context, libPath, dataDir string, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	conn, err := chdb.Open(libPath, dataDir)
	if err != nil {
		return nil, err
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.database(), nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("create database %s: %w", cfg.database(), err)
	}
	s, err := newStore(ctx, conn, cfg, reg, logger)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

// Optimize merges every table's parts (OPTIMIZE TABLE ... FINAL), the state
// background merges reach, so benchmarks measure steady-state sizes.
func (s *Store) Optimize(ctx context.Context) error {
	for _, t := range []string{"spans_by_trace", "spans", "trace_index", "operations", "dependencies"} {
		if err := s.conn.Exec(ctx, "OPTIMIZE TABLE "+s.schema.local(t)+" FINAL", nil); err != nil {
			return fmt.Errorf("optimize %s: %w", t, err)
		}
	}
	return nil
}
