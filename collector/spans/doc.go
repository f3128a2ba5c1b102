// Package spans is the span data model that flows through the collector's
// ingest pipeline and into every trace store.
//
// It is deliberately flat (one Span per OTLP span with the resource's
// service name copied in) so that stores can encode it compactly and the
// topology builder can pair spans without walking OTLP's nested
// resource/scope structure. Receivers translate OTLP into this model; the
// query layer translates it out into Jaeger's and the native JSON shapes.
package spans
