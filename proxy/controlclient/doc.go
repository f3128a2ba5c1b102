// Package controlclient connects a proxy to the control plane: it registers
// over one WebSocket (control/wire hello), receives full config snapshots,
// compiles each into the policy chains (package chain) and swaps them in
// atomically, and reports the endpoints its outlier detection or health
// checks ejected.
//
// The proxy never depends on the control plane being up: the last good
// snapshot is persisted to the state directory (written to a temporary
// file and renamed) and loaded at start, a snapshot that does not compile
// is rejected and the previous one kept, and a lost connection is retried
// with exponential backoff and full jitter while traffic keeps flowing on
// the last applied snapshot.
package controlclient
