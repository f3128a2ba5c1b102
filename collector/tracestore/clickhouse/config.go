package clickhouse

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Config configures the ClickHouse trace store. The zero value of every field
// but DSN means "use the default" (see Defaults).
type Config struct {
	// DSN is the native-protocol address of the database:
	// clickhouse://user:pass@host:9000/db?dial_timeout=5s&compress=lz4
	// (clickhouse-go/v2 DSN; several hosts separated by commas). The database
	// must exist. Compression defaults to LZ4 when the DSN names none.
	// Required; no default.
	DSN string `yaml:"dsn"`
	// Cluster is the ClickHouse cluster name (remote_servers) to create
	// ReplicatedMergeTree tables and Distributed tables ON CLUSTER. Empty (the
	// default) creates plain MergeTree tables on the server of the DSN.
	Cluster string `yaml:"cluster"`
	// Retention is how long spans are kept (a TTL on the tables, whole
	// daily parts dropped). Default 168h (7 days); unit: Go duration,
	// rounded to whole seconds; "0s" after defaulting is not possible, set
	// KeepForever to keep spans forever.
	Retention time.Duration `yaml:"retention"`
	// KeepForever disables the TTL. Default false.
	KeepForever bool `yaml:"keep_forever"`
	// BatchSize is the number of spans that triggers an insert at once.
	// Default 10000 spans.
	BatchSize int `yaml:"batch_size"`
	// BatchTimeout is the longest a span waits for more spans before its
	// batch is inserted. It is added to the acknowledgement latency of a
	// lone write. Default 200ms.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// QueueSpans bounds the spans accepted but not yet inserted (queued plus
	// in flight). A write that does not fit is refused with an error wrapping
	// consumer.ErrOverloaded. Default 100000 spans.
	QueueSpans int `yaml:"queue_spans"`
	// Inserters is the number of inserts in flight at once. Default 2.
	Inserters int `yaml:"inserters"`
	// InsertTimeout bounds one insert attempt. Default 30s.
	InsertTimeout time.Duration `yaml:"insert_timeout"`
	// MaxAttempts is how many times a batch is tried before its writers get
	// the error (retryable errors only). Default 5 attempts.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the wait before the first retry; it doubles per attempt
	// (with ±25% jitter) up to RetryMaxBackoff. Default 100ms.
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// RetryMaxBackoff caps the wait between attempts. Default 5s.
	RetryMaxBackoff time.Duration `yaml:"retry_max_backoff"`
	// QueryTimeout bounds reads (trace by id, search, lists) when the
	// caller's context has no deadline. Default 30s.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// SkipMigrations makes New refuse to start when the schema is not at the
	// latest version instead of applying the missing migrations (for setups
	// where `meshscope migrate --apply` is run by an operator). Default false.
	SkipMigrations bool `yaml:"skip_migrations"`
}

// Defaults returns the default configuration (with an empty DSN).
func Defaults() Config {
	return Config{
		Retention:       7 * 24 * time.Hour,
		BatchSize:       10000,
		BatchTimeout:    200 * time.Millisecond,
		QueueSpans:      100000,
		Inserters:       2,
		InsertTimeout:   30 * time.Second,
		MaxAttempts:     5,
		RetryBackoff:    100 * time.Millisecond,
		RetryMaxBackoff: 5 * time.Second,
		QueryTimeout:    30 * time.Second,
	}
}

// withDefaults fills zero fields from Defaults.
func (c Config) withDefaults() Config {
	d := Defaults()
	if c.Retention == 0 {
		c.Retention = d.Retention
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = d.BatchTimeout
	}
	if c.QueueSpans == 0 {
		c.QueueSpans = d.QueueSpans
	}
	if c.Inserters == 0 {
		c.Inserters = d.Inserters
	}
	if c.InsertTimeout == 0 {
		c.InsertTimeout = d.InsertTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = d.RetryBackoff
	}
	if c.RetryMaxBackoff == 0 {
		c.RetryMaxBackoff = d.RetryMaxBackoff
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = d.QueryTimeout
	}
	return c
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the configuration (after defaults are applied) and names
// the bad key.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.DSN == "" {
		return errors.New("clickhouse.dsn: required (clickhouse://user:pass@host:9000/db)")
	}
	opts, err := ch.ParseDSN(c.DSN)
	if err != nil {
		return fmt.Errorf("clickhouse.dsn: %w", err)
	}
	if db := opts.Auth.Database; db != "" && !identRe.MatchString(db) {
		return fmt.Errorf("clickhouse.dsn: database %q: want letters, digits and _", db)
	}
	if c.Cluster != "" && !identRe.MatchString(c.Cluster) {
		return fmt.Errorf("clickhouse.cluster: %q: want letters, digits and _", c.Cluster)
	}
	for _, f := range []struct {
		key string
		d   time.Duration
		min time.Duration
	}{
		{"clickhouse.retention", c.Retention, time.Hour},
		{"clickhouse.batch_timeout", c.BatchTimeout, time.Millisecond},
		{"clickhouse.insert_timeout", c.InsertTimeout, time.Millisecond},
		{"clickhouse.retry_backoff", c.RetryBackoff, time.Millisecond},
		{"clickhouse.retry_max_backoff", c.RetryMaxBackoff, time.Millisecond},
		{"clickhouse.query_timeout", c.QueryTimeout, time.Millisecond},
	} {
		if f.d < f.min {
			return fmt.Errorf("%s: %v: want at least %v", f.key, f.d, f.min)
		}
	}
	if c.RetryMaxBackoff < c.RetryBackoff {
		return fmt.Errorf("clickhouse.retry_max_backoff: %v is below clickhouse.retry_backoff %v", c.RetryMaxBackoff, c.RetryBackoff)
	}
	for _, f := range []struct {
		key string
		n   int
	}{
		{"clickhouse.batch_size", c.BatchSize},
		{"clickhouse.queue_spans", c.QueueSpans},
		{"clickhouse.inserters", c.Inserters},
		{"clickhouse.max_attempts", c.MaxAttempts},
	} {
		if f.n < 1 {
			return fmt.Errorf("%s: %d: want at least 1", f.key, f.n)
		}
	}
	if c.QueueSpans < c.BatchSize {
		return fmt.Errorf("clickhouse.queue_spans: %d is below clickhouse.batch_size %d", c.QueueSpans, c.BatchSize)
	}
	return nil
}

// database is the database of the DSN ("default" when it names none).
func (c Config) database() string {
	opts, err := ch.ParseDSN(c.DSN)
	if err != nil || opts.Auth.Database == "" {
		return "default"
	}
	return opts.Auth.Database
}
