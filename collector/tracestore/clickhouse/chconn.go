package clickhouse

import (
	"context"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// nativeConn is the production chsql.Conn: clickhouse-go/v2 over the native
// protocol, compressed, with server-side query parameters.
type nativeConn struct {
	conn driver.Conn
}

// dial opens the DSN's servers. Compression defaults to LZ4.
func dial(ctx context.Context, cfg Config) (*nativeConn, error) {
	opts, err := ch.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("clickhouse.dsn: %w", err)
	}
	if opts.Compression == nil {
		opts.Compression = &ch.Compression{Method: ch.CompressionLZ4}
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if cfg.Cluster != "" {
		// Acknowledge an insert into a Distributed table only once the
		// shards have it, not when it is queued on the receiving node.
		if opts.Settings == nil {
			opts.Settings = ch.Settings{}
		}
		if _, ok := opts.Settings["insert_distributed_sync"]; !ok {
			opts.Settings["insert_distributed_sync"] = 1
		}
	}
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = cfg.withDefaults().Inserters + 8
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %v: %w", opts.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("connect to clickhouse %v: %w (meshscope needs ClickHouse %s or newer)", opts.Addr, err, MinServerVersion)
	}
	return &nativeConn{conn: conn}, nil
}

func withParams(ctx context.Context, params map[string]string) context.Context {
	if len(params) == 0 {
		return ctx
	}
	return ch.Context(ctx, ch.WithParameters(ch.Parameters(params)))
}

func (c *nativeConn) Exec(ctx context.Context, query string, params map[string]string) error {
	return c.conn.Exec(withParams(ctx, params), query)
}

func (c *nativeConn) Query(ctx context.Context, query string, params map[string]string) (chsql.Rows, error) {
	rows, err := c.conn.Query(withParams(ctx, params), query)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (c *nativeConn) Insert(ctx context.Context, insert string, rows [][]any) error {
	batch, err := c.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	for i, row := range rows {
		if err := batch.Append(row...); err != nil {
			_ = batch.Abort()
			return fmt.Errorf("row %d: %w", i, err)
		}
	}
	return batch.Send()
}

func (c *nativeConn) Close() error { return c.conn.Close() }
