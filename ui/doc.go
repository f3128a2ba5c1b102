// Package ui serves Meshscope's web UI: a single-page application (live
// topology, service table, trace search and waterfall) built from ui/web by
// esbuild into ui/dist and embedded into the meshscope binary.
//
// The handler serves the bundle's static files with caching headers and a
// strict Content-Security-Policy, answers every other non-API GET path with
// index.html so client-side routes survive a reload, and, when the bundle was
// not built (ui/dist holds only .keep), a plain page that says to run
// `make build`.
package ui
