package clickhouse

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// Store is the ClickHouse trace store. It implements tracestore.Store.
type Store struct {
	cfg     Config
	schema  schema
	conn    chsql.Conn
	logger  *slog.Logger
	metrics *metrics
	insert  string // INSERT INTO db.spans_by_trace (spanColumns)

	// Write path: WriteSpans reserves queue room, hands a request to the
	// batcher, which groups requests into batches for the inserters.
	mu       sync.Mutex
	queued   int            // spans reserved (queued + in flight)
	closing  bool           // no new writes
	admitted sync.WaitGroup // writes past the closing check, not yet handed to the batcher
	requests chan *writeRequest
	batches  chan []*writeRequest
	stop     chan struct{}
	done     sync.WaitGroup
	closeErr error
	closed   sync.Once
}

type writeRequest struct {
	rows [][]any
	done chan error // buffered 1
}

var _ tracestore.Store = (*Store)(nil)

// New connects to the ClickHouse server(s) of cfg.DSN, refuses servers older
// than MinServerVersion, applies missing schema migrations (unless
// cfg.SkipMigrations, then it refuses an outdated schema) and starts the
// insert pipeline. Close stops it.
func New(ctx context.Context, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s, err := newStore(ctx, conn, cfg, reg, logger)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

// Migrate connects to cfg.DSN and prints the schema migrations the database
// lacks to w; with apply it runs them (printing each statement as it goes).
// It refuses servers older than MinServerVersion. This is `meshscope migrate`.
func Migrate(ctx context.Context, cfg Config, apply bool, w io.Writer) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	conn, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	return migrateConn(ctx, conn, cfg, apply, w)
}

func migrateConn(ctx context.Context, conn chsql.Conn, cfg Config, apply bool, w io.Writer) error {
	v, err := serverVersion(ctx, conn)
	if err != nil {
		return err
	}
	if err := checkVersion(v); err != nil {
		return err
	}
	_, _, err = migrate(ctx, conn, cfg, apply, w)
	return err
}

// newStore builds the store on an open connection (the seam the tests use to
// run the store on the in-process engine).
func newStore(ctx context.Context, conn chsql.Conn, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v, err := serverVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(v); err != nil {
		return nil, err
	}
	sc := newSchema(cfg)
	if cfg.SkipMigrations {
		cur, err := sc.currentVersion(ctx, conn)
		if err != nil {
			return nil, fmt.Errorf("%w (run meshscope migrate --apply)", err)
		}
		if latest := LatestVersion(); cur != latest {
			return nil, fmt.Errorf("database %s is at schema version %d, this build needs %d: run meshscope migrate --apply", sc.db, cur, latest)
		}
	} else {
		from, to, err := migrate(ctx, conn, cfg, true, nil)
		if err != nil {
			return nil, err
		}
		if from != to {
			logger.Info("clickhouse schema migrated", "database", sc.db, "from", from, "to", to)
		}
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("clickhouse store metrics: %w", err)
	}
	s := &Store{
		cfg:      cfg,
		schema:   sc,
		conn:     conn,
		logger:   logger,
		metrics:  m,
		insert:   fmt.Sprintf("INSERT INTO %s (%s)", sc.table("spans_by_trace"), spanColumns),
		requests: make(chan *writeRequest),
		batches:  make(chan []*writeRequest),
		stop:     make(chan struct{}),
	}
	logger.Info("clickhouse trace store ready", "server_version", v, "database", sc.db, "cluster", cfg.Cluster)
	s.done.Add(1 + cfg.Inserters)
	go s.batcher()
	for range cfg.Inserters {
		go s.inserter()
	}
	return s, nil
}

// ---- write path ----

// WriteSpans inserts batch and returns once the batch it was grouped into is
// inserted (nil: acknowledged by ClickHouse, see docs/storage-clickhouse.md),
// the insert failed after every attempt (the error), or ctx ended. When the
// queue has no room it returns at once with an error wrapping
// consumer.ErrOverloaded.
func (s *Store) WriteSpans(ctx context.Context, batch []spans.Span) error {
	if len(batch) == 0 {
		return nil
	}
	if len(batch) > s.cfg.QueueSpans {
		s.metrics.spansRefused.Add(float64(len(batch)))
		return fmt.Errorf("clickhouse trace store: batch of %d spans exceeds the queue (%d spans, clickhouse.queue_spans): %w", len(batch), s.cfg.QueueSpans, consumer.ErrOverloaded)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errors.New("clickhouse trace store: closed")
	}
	if s.queued+len(batch) > s.cfg.QueueSpans {
		queued := s.queued
		s.mu.Unlock()
		s.metrics.spansRefused.Add(float64(len(batch)))
		return fmt.Errorf("clickhouse trace store: insert queue full (%d of %d spans waiting): %w", queued, s.cfg.QueueSpans, consumer.ErrOverloaded)
	}
	s.queued += len(batch)
	s.metrics.queueSpans.Set(float64(s.queued))
	s.admitted.Add(1) // Close waits for this write to reach the batcher, which flushes it
	s.mu.Unlock()

	req := &writeRequest{rows: make([][]any, len(batch)), done: make(chan error, 1)}
	for i := range batch {
		req.rows[i] = spanRow(&batch[i])
	}
	select {
	case s.requests <- req:
		s.admitted.Done()
	case <-ctx.Done():
		s.admitted.Done()
		s.release(len(batch))
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The insert goes on; a retry by the sender may duplicate spans,
		// which trace reads deduplicate by span id.
		return ctx.Err()
	}
}

func (s *Store) release(n int) {
	s.mu.Lock()
	s.queued -= n
	s.metrics.queueSpans.Set(float64(s.queued))
	s.mu.Unlock()
}

// batcher groups requests: a group goes to an inserter when it holds
// BatchSize spans or its first request has waited BatchTimeout.
func (s *Store) batcher() {
	defer s.done.Done()
	defer close(s.batches)
	var (
		group []*writeRequest
		rows  int
		timer *time.Timer
		due   bool
	)
	timerC := func() <-chan time.Time {
		if timer == nil || due {
			return nil
		}
		return timer.C
	}
	for {
		in := s.requests
		var out chan []*writeRequest
		if len(group) > 0 && (due || rows >= s.cfg.BatchSize) {
			out = s.batches
		}
		if rows >= s.cfg.BatchSize {
			in = nil // full: wait for an inserter
		}
		select {
		case req := <-in:
			if len(group) == 0 {
				timer = time.NewTimer(s.cfg.BatchTimeout)
				due = false
			}
			group = append(group, req)
			rows += len(req.rows)
		case <-timerC():
			due = true
		case out <- group:
			group, rows, due = nil, 0, false
			timer.Stop()
		case <-s.stop:
			// Closing: WriteSpans no longer sends; hand over what is left.
			if len(group) > 0 {
				s.batches <- group
			}
			return
		}
	}
}

// inserter inserts groups with retries and answers their writers.
func (s *Store) inserter() {
	defer s.done.Done()
	for group := range s.batches {
		var rows [][]any
		for _, r := range group {
			rows = append(rows, r.rows...)
		}
		err := s.insertWithRetry(rows)
		for _, r := range group {
			r.done <- err
		}
		s.release(len(rows))
	}
}

func (s *Store) insertWithRetry(rows [][]any) error {
	s.metrics.batchSpans.Observe(float64(len(rows)))
	var err error
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.InsertTimeout)
		start := time.Now()
		err = s.conn.Insert(ctx, s.insert, rows)
		cancel()
		s.metrics.insertDuration.Observe(time.Since(start).Seconds())
		if err == nil {
			s.metrics.spansWritten.Add(float64(len(rows)))
			if attempt == 1 {
				s.metrics.inserts.WithLabelValues("ok").Inc()
			} else {
				s.metrics.inserts.WithLabelValues("retried").Inc()
			}
			return nil
		}
		retry := retryable(err)
		cause := "permanent"
		if retry {
			cause = "retryable"
		}
		s.metrics.insertErrors.WithLabelValues(cause).Inc()
		if !retry || attempt >= s.cfg.MaxAttempts {
			s.logger.Error("clickhouse insert failed", "spans", len(rows), "attempts", attempt, "cause", cause, "err", err)
			break
		}
		wait := backoff(attempt, s.cfg.RetryBackoff, s.cfg.RetryMaxBackoff)
		s.logger.Warn("clickhouse insert failed, retrying", "spans", len(rows), "attempt", attempt, "retry_in", wait, "err", err)
		time.Sleep(wait)
	}
	s.metrics.inserts.WithLabelValues("failed").Inc()
	s.metrics.spansFailed.Add(float64(len(rows)))
	if retryable(err) {
		// ClickHouse is slow or away: tell the sender to come back later.
		return fmt.Errorf("clickhouse insert of %d spans failed after %d attempts: %w (%w)", len(rows), s.cfg.MaxAttempts, consumer.ErrOverloaded, err)
	}
	return fmt.Errorf("clickhouse insert of %d spans failed: %w", len(rows), err)
}

// Close stops accepting writes, inserts what was accepted and closes the
// connection.
func (s *Store) Close() error {
	s.closed.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		// Writes admitted before closing reach the batcher (still running)
		// and are flushed with the last group, not refused.
		s.admitted.Wait()
		close(s.stop)
		s.done.Wait()
		s.closeErr = s.conn.Close()
	})
	return s.closeErr
}

// ---- read path ----

func (s *Store) readCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.QueryTimeout)
}

// hexParam passes a user-supplied string as hex digits (decoded by unhex in
// the SQL), so no value ever needs escaping.
func hexParam(s string) string { return hex.EncodeToString([]byte(s)) }

func nanos(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// Trace reads the trace's spans from spans_by_trace, ordered by trace id:
// in every part, a binary search of the in-memory primary index finds the
// one or two granules holding the trace, and only those are read. No time
// bound is needed (bounding by the trace index's time range prunes daily
// partitions but costs a second read, which measured slower). LIMIT 1 BY
// hides a span delivered twice until the replacing merge folds it.
func (s *Store) Trace(ctx context.Context, id spans.TraceID) ([]spans.Span, error) {
	ctx, cancel := s.readCtx(ctx)
	defer cancel()
	query, params := s.traceSQL(id)
	rows, err := s.conn.Query(ctx, query, params)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", id, err)
	}
	defer rows.Close()
	var out []spans.Span
	var r spanScan
	for rows.Next() {
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("trace %s: %w", id, err)
		}
		sp, err := r.span()
		if err != nil {
			return nil, fmt.Errorf("trace %s: %w", id, err)
		}
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trace %s: %w", id, err)
	}
	if len(out) == 0 {
		return nil, tracestore.ErrTraceNotFound
	}
	return out, nil
}

// traceSQL renders the trace-by-id query and its parameters.
func (s *Store) traceSQL(id spans.TraceID) (string, map[string]string) {
	return fmt.Sprintf(`SELECT %s FROM %s
WHERE trace_id = unhex({trace_id:String})
LIMIT 1 BY span_id`, spanColumns, s.schema.table("spans_by_trace")),
		map[string]string{"trace_id": hex.EncodeToString(id[:])}
}

// searchSQL renders the search query and its parameters. A service
// matches a span of the service or a CLIENT span calling it (the peer
// column): two branches, each using its own index (the sort key, the
// peer Bloom filter). Sorting by trace duration or error count aggregates
// every span of the matching traces in spans_by_trace (a primary-key read
// per trace) before the limit.
func (s *Store) searchSQL(q tracestore.Query) (string, map[string]string) {
	var where []string
	params := map[string]string{}
	if q.Operation != "" {
		where = append(where, "name = unhex({operation:String})")
		params["operation"] = hexParam(q.Operation)
	}
	if q.MinDuration > 0 {
		where = append(where, "duration >= {min_duration:Int64}")
		params["min_duration"] = strconv.FormatInt(int64(q.MinDuration), 10)
	}
	if q.MaxDuration > 0 {
		where = append(where, "duration <= {max_duration:Int64}")
		params["max_duration"] = strconv.FormatInt(int64(q.MaxDuration), 10)
	}
	switch q.Status {
	case tracestore.StatusError:
		where = append(where, "status_code = 2")
	case tracestore.StatusOK:
		where = append(where, "status_code != 2")
	}
	if !q.Start.IsZero() {
		where = append(where, "timestamp >= fromUnixTimestamp64Nano({start:Int64})")
		params["start"] = nanos(q.Start)
	}
	if !q.End.IsZero() {
		where = append(where, "timestamp <= fromUnixTimestamp64Nano({end:Int64})")
		params["end"] = nanos(q.End)
	}
	keys := make([]string, 0, len(q.Attrs))
	for k := range q.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		kp, vp := fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)
		params[kp], params[vp] = hexParam(k), hexParam(q.Attrs[k])
		key, val := fmt.Sprintf("unhex({%s:String})", kp), fmt.Sprintf("unhex({%s:String})", vp)
		// The span attribute wins over a resource attribute of the same key.
		where = append(where, fmt.Sprintf("if(mapContains(attributes, %[1]s), attributes[%[1]s] = %[2]s, mapContains(resource, %[1]s) AND resource[%[1]s] = %[2]s)", key, val))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = tracestore.DefaultSearchLimit
	}
	params["limit"] = strconv.Itoa(limit)
	cond := func(extra ...string) string {
		all := append(extra, where...)
		if len(all) == 0 {
			return ""
		}
		return "\nWHERE " + strings.Join(all, "\n  AND ")
	}
	spansTable := s.schema.table("spans")
	matching := fmt.Sprintf("SELECT trace_id, min(timestamp) AS start\nFROM %s%s\nGROUP BY trace_id", spansTable, cond())
	if q.Service != "" {
		params["service"] = hexParam(q.Service)
		matching = fmt.Sprintf(`SELECT trace_id, min(timestamp) AS start
FROM (
    SELECT trace_id, timestamp FROM %[1]s%[2]s
    UNION ALL
    SELECT trace_id, timestamp FROM %[1]s%[3]s
)
GROUP BY trace_id`, spansTable, cond("service = unhex({service:String})"), cond("peer = unhex({service:String})"))
	}
	var sortKey string
	switch q.Sort {
	case tracestore.SortLongest:
		sortKey = "max(toUnixTimestamp64Nano(timestamp) + duration) - min(toUnixTimestamp64Nano(timestamp))"
	case tracestore.SortErrors:
		sortKey = "uniqExactIf(span_id, status_code = 2)" // a span stored twice counts once
	default:
		return matching + "\nORDER BY start DESC, trace_id\nLIMIT {limit:UInt32}", params
	}
	global := s.global()
	return fmt.Sprintf(`SELECT m.trace_id, m.start
FROM (%[1]s) AS m
%[2]sINNER JOIN (
    SELECT trace_id, %[3]s AS sort_key
    FROM %[4]s
    WHERE trace_id %[2]sIN (SELECT trace_id FROM (%[1]s))
    GROUP BY trace_id
) AS a ON m.trace_id = a.trace_id
ORDER BY a.sort_key DESC, m.start DESC, m.trace_id
LIMIT {limit:UInt32}`, matching, global, sortKey, s.schema.table("spans_by_trace")), params
}

// global is the GLOBAL modifier of IN and JOIN over a subquery on a
// cluster, where both sides read Distributed tables.
func (s *Store) global() string {
	if s.cfg.Cluster != "" {
		return "GLOBAL "
	}
	return ""
}

// Search finds traces with a span matching every condition, most recent first.
func (s *Store) Search(ctx context.Context, q tracestore.Query) ([]tracestore.TraceRef, error) {
	ctx, cancel := s.readCtx(ctx)
	defer cancel()
	query, params := s.searchSQL(q)
	rows, err := s.conn.Query(ctx, query, params)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var out []tracestore.TraceRef
	for rows.Next() {
		var id string
		var start time.Time
		if err := rows.Scan(&id, &start); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		var ref tracestore.TraceRef
		copy(ref.TraceID[:], id)
		ref.Start = start
		out = append(out, ref)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return out, nil
}

// Services lists services from the operations table and the peer services
// of CLIENT spans from the peers table (a few rows per name, not a scan of
// the spans).
func (s *Store) Services(ctx context.Context) ([]string, error) {
	infos, err := s.ServiceInfos(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out, nil
}

// ServiceInfos lists the services as Services does, marking those known only
// as the peer of CLIENT spans.
func (s *Store) ServiceInfos(ctx context.Context) ([]tracestore.ServiceInfo, error) {
	ctx, cancel := s.readCtx(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT name, min(unmeshed) FROM (
    SELECT DISTINCT toString(service) AS name, toUInt8(0) AS unmeshed FROM %s
    UNION ALL
    SELECT DISTINCT toString(peer) AS name, toUInt8(1) AS unmeshed FROM %s
)
GROUP BY name
ORDER BY name`, s.schema.table("operations"), s.schema.table("peers")), nil)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	defer rows.Close()
	var out []tracestore.ServiceInfo
	for rows.Next() {
		var in tracestore.ServiceInfo
		var unmeshed uint8
		if err := rows.Scan(&in.Name, &unmeshed); err != nil {
			return nil, fmt.Errorf("services: %w", err)
		}
		in.Unmeshed = unmeshed == 1
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return out, nil
}

// Operations lists a service's span names and kinds.
func (s *Store) Operations(ctx context.Context, q tracestore.OperationQuery) ([]tracestore.Operation, error) {
	ctx, cancel := s.readCtx(ctx)
	defer cancel()
	params := map[string]string{"service": hexParam(q.Service)}
	cond := "service = unhex({service:String})"
	if q.Kind != nil {
		cond += " AND kind = {kind:UInt8}"
		params["kind"] = strconv.Itoa(int(*q.Kind))
	}
	// A service without operations of its own (an unmeshed service) lists
	// the CLIENT spans calling it, from the peers table.
	callers := ""
	if q.Kind == nil || *q.Kind == spans.KindClient {
		callers = fmt.Sprintf(`
    UNION ALL
    SELECT DISTINCT toString(name) AS op, toUInt8(3) AS k FROM %s
    WHERE peer = unhex({service:String})
      AND unhex({service:String}) %sNOT IN (SELECT service FROM %s WHERE service = unhex({service:String}))`,
			s.schema.table("peers"), s.global(), s.schema.table("operations"))
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT op, k FROM (
    SELECT DISTINCT toString(name) AS op, kind AS k FROM %s WHERE %s%s
)
ORDER BY op, k`, s.schema.table("operations"), cond, callers), params)
	if err != nil {
		return nil, fmt.Errorf("operations: %w", err)
	}
	defer rows.Close()
	var out []tracestore.Operation
	for rows.Next() {
		var name string
		var kind uint8
		if err := rows.Scan(&name, &kind); err != nil {
			return nil, fmt.Errorf("operations: %w", err)
		}
		out = append(out, tracestore.Operation{Name: name, Kind: spans.Kind(kind)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("operations: %w", err)
	}
	return out, nil
}

// Dependency is the number of calls from one service to another in a window.
type Dependency struct {
	Parent, Child string
	Calls, Errors uint64
}

// Dependencies sums the per-minute service-to-service call counts of client
// and producer spans (child: the span's peer.service, server.address or
// net.peer.name attribute) over [start, end]. It reads the small
// dependencies table, so long windows stay cheap.
func (s *Store) Dependencies(ctx context.Context, start, end time.Time) ([]Dependency, error) {
	ctx, cancel := s.readCtx(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT toString(parent), toString(child), sum(calls), sum(errors)
FROM %s
WHERE minute >= toStartOfMinute(toDateTime({start:Int64})) AND minute <= toDateTime({end:Int64})
GROUP BY parent, child
ORDER BY parent, child`, s.schema.table("dependencies")),
		map[string]string{"start": strconv.FormatInt(start.Unix(), 10), "end": strconv.FormatInt(end.Unix(), 10)})
	if err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	defer rows.Close()
	var out []Dependency
	for rows.Next() {
		var d Dependency
		if err := rows.Scan(&d.Parent, &d.Child, &d.Calls, &d.Errors); err != nil {
			return nil, fmt.Errorf("dependencies: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("dependencies: %w", err)
	}
	return out, nil
}

// TableUsage is the size of one of the store's tables.
type TableUsage struct {
	Table             string
	Rows              uint64
	Bytes             uint64 // compressed, on disk
	UncompressedBytes uint64
}

// Usage reports the active parts of the store's tables on the server the
// store is connected to (on a cluster: that node's local tables).
func (s *Store) Usage(ctx context.Context) ([]TableUsage, error) {
	ctx, cancel := s.readCtx(ctx)
	defer cancel()
	rows, err := s.conn.Query(ctx, `SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes)
FROM system.parts
WHERE active AND database = unhex({db:String})
GROUP BY table
ORDER BY table`, map[string]string{"db": hexParam(s.schema.db)})
	if err != nil {
		return nil, fmt.Errorf("table usage: %w", err)
	}
	defer rows.Close()
	var out []TableUsage
	for rows.Next() {
		var u TableUsage
		if err := rows.Scan(&u.Table, &u.Rows, &u.Bytes, &u.UncompressedBytes); err != nil {
			return nil, fmt.Errorf("table usage: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("table usage: %w", err)
	}
	return out, nil
}

// ColumnUsage is the size of one column of one of the store's tables.
type ColumnUsage struct {
	Table, Column     string
	Bytes             uint64 // compressed
	UncompressedBytes uint64
}

// Columns reports the compressed size of every column of the store's
// tables, largest first (for benchmarks that weigh the schema).
func (s *Store) Columns(ctx context.Context) ([]ColumnUsage, error) {
	rows, err := s.conn.Query(ctx, `SELECT table, name, data_compressed_bytes, data_uncompressed_bytes
FROM system.columns
WHERE database = unhex({db:String}) AND data_compressed_bytes > 0
ORDER BY data_compressed_bytes DESC`, map[string]string{"db": hexParam(s.schema.db)})
	if err != nil {
		return nil, fmt.Errorf("column usage: %w", err)
	}
	defer rows.Close()
	var out []ColumnUsage
	for rows.Next() {
		var u ColumnUsage
		if err := rows.Scan(&u.Table, &u.Column, &u.Bytes, &u.UncompressedBytes); err != nil {
			return nil, fmt.Errorf("column usage: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("column usage: %w", err)
	}
	return out, nil
}
