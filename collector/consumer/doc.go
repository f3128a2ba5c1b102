// Package consumer is the one seam between the stages of the ingest
// pipeline: receivers hand batches to a consumer, batchers and fan-outs are
// consumers that hand on to the next, and stores and the topology builder are
// the sinks at the end.
//
// A consumer's return is the acknowledgement: a nil error means the batch is
// as durable as the sink promises (for the embedded trace store: synced to its
// WAL), so a receiver only answers its client after the call returns.
// ErrOverloaded tells the receiver to answer 429 / RESOURCE_EXHAUSTED.
package consumer
