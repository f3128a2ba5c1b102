// Package collector is the ingest side of meshscope server: OTLP receivers
// for traces and metrics (gRPC and HTTP, protobuf and JSON), a Prometheus
// remote-write receiver, and the batching stage in front of the sinks. It
// feeds spans to a consumer.Spans (the trace store and the topology
// builder) and metrics to a Prometheus storage.AppendableV2 (the embedded
// TSDB). Every request passes one admission before it is decoded: a
// memory limit on the requests in flight (max_inflight_bytes), body
// deadlines with a minimum rate, then a request slot. OTLP delta metrics
// are converted to cumulative. See docs/collector.md.
package collector
