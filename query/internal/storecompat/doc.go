// Package storecompat holds the test that serves the query fixtures from
// the real embedded trace store and checks the Jaeger API answers exactly
// as over the in-memory fake (kept apart so the API packages do not depend
// on the store's build).
package storecompat
