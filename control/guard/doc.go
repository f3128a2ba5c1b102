// Package guard is the guard controller of `meshscope server`: it runs
// after every evaluation of the rules engine (and on a 1 s ticker),
// matches each Guard document's condition against the firing alerts, and
// acts on the guarded service's traffic by writing new policy versions
// through the control-plane store (compare-and-swap, so a concurrent apply
// is never overwritten). Every decision is an event, appended fsync'd to
// <data>/guards/events.log; the active actions and their revert points
// are kept in <data>/guards/state.json and survive a restart. A revert
// restores the exact documents the action replaced.
//
// The model, each action and the API are documented in docs/guards.md.
package guard
