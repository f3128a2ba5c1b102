package clickhouse

import (
	"bytes"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestConfigYAML decodes the example of docs/storage-clickhouse.md strictly.
func TestConfigYAML(t *testing.T) {
	const doc = `
dsn: clickhouse://meshscope:secret@ch1:9000,ch2:9000/traces
cluster: meshscope
retention: 168h
batch_size: 10000
batch_timeout: 200ms
queue_spans: 100000
inserters: 2
insert_timeout: 30s
max_attempts: 5
retry_backoff: 100ms
retry_max_backoff: 5s
query_timeout: 30s
keep_forever: false
skip_migrations: false
`
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.KnownFields(true)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.DSN = "clickhouse://meshscope:secret@ch1:9000,ch2:9000/traces"
	want.Cluster = "meshscope"
	if cfg != want {
		t.Fatalf("decoded %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.database() != "traces" {
		t.Fatalf("database = %q", cfg.database())
	}
	dec = yaml.NewDecoder(bytes.NewReader([]byte("dsn: x\nbatch_sise: 3\n")))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil {
		t.Fatal("unknown key accepted")
	}
	if (Config{DSN: "clickhouse://h:9000"}).database() != "default" {
		t.Fatal("DSN without database does not mean default")
	}
}
