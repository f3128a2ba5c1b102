// Package authz evaluates a service's Authorization (control/policy) on
// its inbound proxy: a request is allowed when any rule matches its
// caller identity, method, path and headers. In audit mode a would-deny
// is reported and the request passes; in enforce mode it is answered 403
// with the reason in the x-meshscope-authz header (docs/mtls.md).
package authz
