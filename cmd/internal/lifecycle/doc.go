// Package lifecycle is the one contract every long-running part of both
// binaries follows, and the group that composes them in main.
//
// A part is a Runner: Run starts it, blocks while it works, and returns once
// ctx is cancelled and its in-flight work is drained (or the drain deadline
// passed). Parts that take traffic also report readiness. main adds parts to a
// Group in dependency order (sinks first); the Group cancels them in reverse
// order (sources first), so every stage drains into a stage that is still
// running and storage closes last.
package lifecycle
