// Package mirror is the mirroring layer: a percentage of requests is copied
// to another version of the service in the background. The copy's response
// is discarded and the caller never waits for it; copies beyond
// MaxInFlight at once, and requests whose body is larger than MaxBody, are
// not mirrored. Observe mode records "mirror" without sending.
package mirror
