//go:build chdb

package main

import (
	"context"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse"
)

const engineBuilt = true

func openStore(ctx context.Context, lib, dir string, cfg clickhouse.Config) (benchStore, error) {
	return clickhouse.OpenOnEngine(ctx, lib, dir, cfg, nil, nil)
}
