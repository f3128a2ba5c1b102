CREATE TABLE IF NOT EXISTS traces.schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = MergeTree
ORDER BY version;

-- migration 1: spans table
CREATE TABLE IF NOT EXISTS traces.spans (
    timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    trace_id FixedString(16) CODEC(ZSTD(1)),
    span_id FixedString(8) CODEC(ZSTD(1)),
    parent_span_id FixedString(8) CODEC(ZSTD(1)),
    trace_state String CODEC(ZSTD(1)),
    service LowCardinality(String) CODEC(ZSTD(1)),
    name LowCardinality(String) CODEC(ZSTD(1)),
    kind UInt8 CODEC(ZSTD(1)),
    duration Int64 CODEC(T64, ZSTD(1)),
    status_code UInt8 CODEC(ZSTD(1)),
    status_message String CODEC(ZSTD(1)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    attribute_types Map(LowCardinality(String), UInt8) CODEC(ZSTD(1)),
    resource Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_types Map(LowCardinality(String), UInt8) CODEC(ZSTD(1)),
    scope LowCardinality(String) CODEC(ZSTD(1)),
    scope_version LowCardinality(String) CODEC(ZSTD(1)),
    event_times Array(DateTime64(9)) CODEC(ZSTD(1)),
    event_names Array(LowCardinality(String)) CODEC(ZSTD(1)),
    event_attributes Array(String) CODEC(ZSTD(1)),
    link_trace_ids Array(FixedString(16)) CODEC(ZSTD(1)),
    link_span_ids Array(FixedString(8)) CODEC(ZSTD(1)),
    link_attributes Array(String) CODEC(ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_timestamp timestamp TYPE minmax GRANULARITY 1,
    INDEX idx_duration duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (service, name, toDateTime(timestamp))
TTL toDateTime(timestamp) + INTERVAL 604800 SECOND
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1;

-- migration 2: trace id index table and view
CREATE TABLE IF NOT EXISTS traces.trace_index (
    trace_id FixedString(16) CODEC(ZSTD(1)),
    start_min DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    start_max DateTime64(9) CODEC(Delta(8), ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(start_min)
ORDER BY (trace_id, toDateTime(start_min))
TTL toDateTime(start_min) + INTERVAL 604800 SECOND
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS traces.trace_index_mv TO traces.trace_index AS
SELECT trace_id, min(timestamp) AS start_min, max(timestamp) AS start_max
FROM traces.spans
GROUP BY trace_id;

INSERT INTO traces.trace_index (trace_id, start_min, start_max)
SELECT trace_id, min(timestamp), max(timestamp) FROM traces.spans GROUP BY trace_id;

-- migration 3: operations table and view
CREATE TABLE IF NOT EXISTS traces.operations (
    service LowCardinality(String),
    name LowCardinality(String),
    kind UInt8,
    last_seen DateTime
) ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (service, kind, name)
TTL last_seen + INTERVAL 604800 SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS traces.operations_mv TO traces.operations AS
SELECT service, name, kind, max(toDateTime(timestamp)) AS last_seen
FROM traces.spans
GROUP BY service, name, kind;

INSERT INTO traces.operations (service, name, kind, last_seen)
SELECT service, name, kind, max(toDateTime(timestamp)) FROM traces.spans GROUP BY service, name, kind;

-- migration 4: service dependencies per minute
CREATE TABLE IF NOT EXISTS traces.dependencies (
    minute DateTime CODEC(Delta(4), ZSTD(1)),
    parent LowCardinality(String),
    child LowCardinality(String),
    calls UInt64,
    errors UInt64
) ENGINE = SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, parent, child)
TTL minute + INTERVAL 604800 SECOND
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS traces.dependencies_mv TO traces.dependencies AS
SELECT
    toStartOfMinute(toDateTime(timestamp)) AS minute,
    service AS parent,
    multiIf(attributes['peer.service'] != '', attributes['peer.service'],
            attributes['server.address'] != '', attributes['server.address'],
            attributes['net.peer.name']) AS child,
    count() AS calls,
    countIf(status_code = 2) AS errors
FROM traces.spans
WHERE kind IN (3, 4) AND child != ''
GROUP BY minute, parent, child;

-- migration 5: attribute key and value skip indexes
ALTER TABLE traces.spans ADD INDEX IF NOT EXISTS idx_attribute_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE traces.spans ADD INDEX IF NOT EXISTS idx_attribute_values mapValues(attributes) TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE traces.spans ADD INDEX IF NOT EXISTS idx_resource_keys mapKeys(resource) TYPE bloom_filter(0.01) GRANULARITY 1;

ALTER TABLE traces.spans ADD INDEX IF NOT EXISTS idx_resource_values mapValues(resource) TYPE bloom_filter(0.01) GRANULARITY 1;

-- migration 6: spans_by_trace data table ordered by trace id, backfilled
CREATE TABLE IF NOT EXISTS traces.spans_by_trace (
    timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    trace_id FixedString(16) CODEC(ZSTD(1)),
    span_id FixedString(8) CODEC(ZSTD(1)),
    parent_span_id FixedString(8) CODEC(ZSTD(1)),
    trace_state String CODEC(ZSTD(1)),
    service LowCardinality(String) CODEC(ZSTD(1)),
    name LowCardinality(String) CODEC(ZSTD(1)),
    kind UInt8 CODEC(ZSTD(1)),
    duration Int64 CODEC(T64, ZSTD(1)),
    status_code UInt8 CODEC(ZSTD(1)),
    status_message String CODEC(ZSTD(1)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    attribute_types Map(LowCardinality(String), UInt8) CODEC(ZSTD(1)),
    resource Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_types Map(LowCardinality(String), UInt8) CODEC(ZSTD(1)),
    scope LowCardinality(String) CODEC(ZSTD(1)),
    scope_version LowCardinality(String) CODEC(ZSTD(1)),
    event_times Array(DateTime64(9)) CODEC(ZSTD(1)),
    event_names Array(LowCardinality(String)) CODEC(ZSTD(1)),
    event_attributes Array(String) CODEC(ZSTD(1)),
    link_trace_ids Array(FixedString(16)) CODEC(ZSTD(1)),
    link_span_ids Array(FixedString(8)) CODEC(ZSTD(1)),
    link_attributes Array(String) CODEC(ZSTD(1))
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(timestamp)
PRIMARY KEY trace_id
ORDER BY (trace_id, span_id)
TTL toDateTime(timestamp) + INTERVAL 604800 SECOND
SETTINGS index_granularity = 1024, ttl_only_drop_parts = 1;

INSERT INTO traces.spans_by_trace (timestamp, trace_id, span_id, parent_span_id, trace_state, service, name, kind, duration, status_code, status_message, attributes, attribute_types, resource, resource_types, scope, scope_version, event_times, event_names, event_attributes, link_trace_ids, link_span_ids, link_attributes)
SELECT timestamp, trace_id, span_id, parent_span_id, trace_state, service, name, kind, duration, status_code, status_message, attributes, attribute_types, resource, resource_types, scope, scope_version, event_times, event_names, event_attributes, link_trace_ids, link_span_ids, link_attributes FROM traces.spans;

-- migration 7: search table filled from spans_by_trace, without the columns only trace by id reads
CREATE MATERIALIZED VIEW IF NOT EXISTS traces.spans_mv TO traces.spans AS
SELECT timestamp, trace_id, service, name, kind, duration, status_code, attributes, resource
FROM traces.spans_by_trace;

ALTER TABLE traces.spans
    DROP INDEX IF EXISTS idx_trace_id,
    DROP COLUMN IF EXISTS span_id,
    DROP COLUMN IF EXISTS parent_span_id,
    DROP COLUMN IF EXISTS trace_state,
    DROP COLUMN IF EXISTS status_message,
    DROP COLUMN IF EXISTS attribute_types,
    DROP COLUMN IF EXISTS resource_types,
    DROP COLUMN IF EXISTS scope,
    DROP COLUMN IF EXISTS scope_version,
    DROP COLUMN IF EXISTS event_times,
    DROP COLUMN IF EXISTS event_names,
    DROP COLUMN IF EXISTS event_attributes,
    DROP COLUMN IF EXISTS link_trace_ids,
    DROP COLUMN IF EXISTS link_span_ids,
    DROP COLUMN IF EXISTS link_attributes;

-- migration 8: peer service of client spans: search column and index, peers table and view, backfilled
ALTER TABLE traces.spans ADD COLUMN IF NOT EXISTS peer LowCardinality(String) MATERIALIZED if(kind != 3, '', multiIf(
    attributes['mesh.destination.service'] NOT IN ('', 'unknown', 'external'), attributes['mesh.destination.service'],
    attributes['peer.service'] != '', attributes['peer.service'],
    if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']) = 'localhost' OR match(if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']), '[.:]'), '',
    if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name'])));

ALTER TABLE traces.spans ADD INDEX IF NOT EXISTS idx_peer peer TYPE bloom_filter(0.01) GRANULARITY 1;

CREATE TABLE IF NOT EXISTS traces.peers (
    peer LowCardinality(String),
    name LowCardinality(String),
    last_seen DateTime
) ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (peer, name)
TTL last_seen + INTERVAL 604800 SECOND;

CREATE MATERIALIZED VIEW IF NOT EXISTS traces.peers_mv TO traces.peers AS
SELECT if(kind != 3, '', multiIf(
    attributes['mesh.destination.service'] NOT IN ('', 'unknown', 'external'), attributes['mesh.destination.service'],
    attributes['peer.service'] != '', attributes['peer.service'],
    if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']) = 'localhost' OR match(if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']), '[.:]'), '',
    if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']))) AS peer, name, max(toDateTime(timestamp)) AS last_seen
FROM traces.spans
WHERE kind = 3
GROUP BY peer, name
HAVING peer != '';

INSERT INTO traces.peers (peer, name, last_seen)
SELECT if(kind != 3, '', multiIf(
    attributes['mesh.destination.service'] NOT IN ('', 'unknown', 'external'), attributes['mesh.destination.service'],
    attributes['peer.service'] != '', attributes['peer.service'],
    if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']) = 'localhost' OR match(if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']), '[.:]'), '',
    if(attributes['server.address'] != '', attributes['server.address'], attributes['net.peer.name']))) AS p, name, max(toDateTime(timestamp)) FROM traces.spans WHERE kind = 3 GROUP BY p, name HAVING p != '';

