// Package control is Meshscope's control plane as one part of `meshscope
// server`: the durable policy store (control/store), the proxy registry
// and config pusher (control/registry), the policy API under
// /api/mesh/v1 and the proxy stream at /api/control/v1/stream, and the
// watcher of a --policies directory of YAML files. The document model is
// control/policy, the proxy protocol control/wire, the CLI control/cli.
//
// The API and the protocol are documented in docs/api.md and
// docs/control-plane.md, the policy kinds in docs/policies.md.
package control
