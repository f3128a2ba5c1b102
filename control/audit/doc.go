// Package audit is the audit log of `meshscope server`: every mutating
// call (policy apply, delete and rollback; token changes; guard and
// rollout actions by people or controllers) appended durably, one fsync'd
// JSON line per entry (control/jsonlog), in segment files below
// <data>/audit, with who, when, from where, what (the diff) and the
// resulting version. Retention drops whole segments by age and by total
// size. GET /api/mesh/v1/audit serves it with filters and paging; the
// format is documented in docs/security.md.
package audit
