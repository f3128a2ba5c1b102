// Package batch is the batching stage of the ingest pipeline: a
// consumer.Spans that sits between the receivers and the sinks, merges the
// small batches of concurrent requests into larger sink calls, bounds the
// spans in flight (beyond the bound it refuses with consumer.ErrOverloaded,
// which receivers turn into 429 / RESOURCE_EXHAUSTED) and drains on
// shutdown. A caller's ConsumeSpans returns only when the sink has taken its
// spans, so the acknowledgement a client gets means what the sink promises.
package batch
