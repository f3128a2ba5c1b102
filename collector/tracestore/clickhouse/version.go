package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// MinServerVersion is the oldest ClickHouse release the store supports: it
// needs Map columns, DateTime64, codecs, TTL, skip indexes and server-side
// query parameters, and clickhouse-go/v2 supports current releases only.
const MinServerVersion = "23.8"

// serverVersion asks the server for its version.
func serverVersion(ctx context.Context, conn chsql.Conn) (string, error) {
	rows, err := conn.Query(ctx, "SELECT version()", nil)
	if err != nil {
		return "", fmt.Errorf("SELECT version(): %w", err)
	}
	defer rows.Close()
	var v string
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("SELECT version(): %w", err)
		}
		return "", fmt.Errorf("SELECT version(): no row")
	}
	if err := rows.Scan(&v); err != nil {
		return "", fmt.Errorf("SELECT version(): %w", err)
	}
	return v, rows.Err()
}

// checkVersion refuses servers older than MinServerVersion.
func checkVersion(version string) error {
	ok, err := versionAtLeast(version, MinServerVersion)
	if err != nil {
		return fmt.Errorf("clickhouse server version %q: %w (meshscope needs %s or newer)", version, err, MinServerVersion)
	}
	if !ok {
		return fmt.Errorf("clickhouse server version %s is older than %s, the oldest meshscope supports: upgrade the server", version, MinServerVersion)
	}
	return nil
}

// versionAtLeast compares dotted versions by their numeric components.
func versionAtLeast(version, min string) (bool, error) {
	parse := func(s string) ([]int, error) {
		parts := strings.Split(strings.TrimSpace(s), ".")
		if len(parts) < 2 {
			return nil, fmt.Errorf("want major.minor[.patch...]")
		}
		out := make([]int, len(parts))
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, fmt.Errorf("component %q is not a number", p)
			}
			out[i] = n
		}
		return out, nil
	}
	v, err := parse(version)
	if err != nil {
		return false, err
	}
	m, err := parse(min)
	if err != nil {
		return false, err
	}
	for i := range m {
		if i >= len(v) {
			return true, nil
		}
		if v[i] != m[i] {
			return v[i] > m[i], nil
		}
	}
	return true, nil
}
