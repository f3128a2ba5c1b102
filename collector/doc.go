// Package collector is the ingest side of meshscope server: OTLP receivers
// for traces and metrics (gRPC and HTTP, protobuf and JSON), a Prometheus
// remote-write receiver, and the batching stage in front of the sinks. It
// feeds spans to a consumer.Spans (the trace store and the topology
// builder) and metrics to a Prometheus storage.AppendableV2 (the embedded
// TSDB). See docs/collector.md.
package collector
