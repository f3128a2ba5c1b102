//go:build !chdb

package main

import (
	"context"
	"errors"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse"
)

// Without the chdb build tag main re-runs itself with it.
const engineBuilt = false

func openStore(ctx context.Context, lib, dir string, cfg clickhouse.Config) (benchStore, error) {
	return nil, errors.New("built without the chdb tag")
}
