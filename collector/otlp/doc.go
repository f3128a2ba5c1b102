// Package otlp decodes OTLP export requests (protobuf and JSON, as sent
// over gRPC and HTTP) and translates them: traces into the collector's flat
// span model, metrics into Prometheus series the way Prometheus' own OTLP
// receiver does (it reuses Prometheus' translator).
package otlp
