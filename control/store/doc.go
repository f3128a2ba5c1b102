// Package store keeps the policy documents durably in the data directory:
// an append-only log (policies.log, one JSON line per version, fsynced
// before an apply is acknowledged) replayed on open. Every change makes a
// new, monotonically increasing version and a history entry saying who
// changed what and when; a rollback is a new version whose content equals
// an old one. Documents may be owned by a file of the watched policy
// directory, in which case only that directory may change them.
package store
