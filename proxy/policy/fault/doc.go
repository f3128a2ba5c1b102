// Package fault is the fault-injection layer: it delays a percentage of
// requests by a fixed duration and aborts a percentage with a chosen status,
// before they reach the upstream. Observe mode records fault_delay and
// fault_abort without delaying or aborting.
package fault
