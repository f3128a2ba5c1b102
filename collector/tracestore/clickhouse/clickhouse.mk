# ClickHouse store targets (owned by collector/tracestore/clickhouse/).
