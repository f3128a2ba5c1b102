// Package storetest is the conformance suite every trace store backend
// passes: the same table-driven cases (write and read back by trace id,
// traces assembled from batches written minutes apart, search by service,
// operation, attributes, duration, status and time range, service and
// operation listings, typed attribute round trips) run against any
// tracestore.Store. A backend's own test calls Run with a function that opens
// a fresh, empty store.
package storetest
