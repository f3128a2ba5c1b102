// Package jsonlog is the append-only, fsync'd JSON-lines file that the
// policy store (control/store) and the audit log (control/audit) keep:
// one JSON value per line, each append written and synced before it is
// acknowledged, a torn last line (a crash mid-write, never acknowledged)
// cut off on open, and a failed write cut back so the next starts on a
// clean line.
package jsonlog
