// Package policy is the traffic-policy document model shared by the control
// plane (which stores and serves the documents) and the proxy (which
// enforces them): a common envelope (kind, name, service, mode), one Go type
// per kind, defaults, validation that names the bad field, and a strict
// multi-document YAML loader.
//
// Every kind is one entry in the kind table (kinds.go) and one file with its
// type; the loader, store, API, CLI and wire protocol handle every kind
// through Document without knowing its fields. Field defaults are declared
// with a `default` struct tag and filled when the key is absent from the
// YAML, so a stored document always carries its effective values.
//
// The package depends only on the standard library and gopkg.in/yaml.v3:
// the proxy binary imports it.
package policy
