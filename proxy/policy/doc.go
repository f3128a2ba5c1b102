// Package policy holds what every traffic-policy layer of the proxy shares:
// the per-request policy state carried in the request context, the decision
// recorder behind mesh_policy_decisions_total and the policy span events,
// and synthetic responses for requests a policy answers itself.
//
// Each policy is one small layer in its own sub-package (route, fault,
// ratelimit, retry, breaker, balancer, outlier, healthcheck, mirror);
// package chain composes them per destination service from a control-plane
// snapshot. A layer in observe mode evaluates its policy and records the
// decision with enforced="false" without changing the request; in enforce
// mode it records enforced="true" and acts.
package policy
