// Package embedded is the default trace store of meshscope server: an
// append-only, checksummed segment log on local disk that is both the
// write-ahead log and the storage, with an in-memory index (trace id →
// span locations, and a compact per-span search row). Writes are group
// committed: a batch is acknowledged only after the fsync that covers it.
// Retention deletes whole sealed segments by age and by total size. The
// on-disk format is documented in docs/format/traces.md.
package embedded
