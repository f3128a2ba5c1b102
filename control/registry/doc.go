// Package registry is the control plane's service registry and config
// pusher. Proxies connect over one WebSocket each (control/wire): a hello
// registers the proxy and its inbound addresses as endpoints of its
// service; the registry then sends it a full snapshot of every service it
// calls and its own (endpoints and policies) and a new one after every
// change that touches those services. Status messages from proxies carry
// health and outlier ejections, shown in the endpoint listing and folded
// into the endpoints' health. An endpoint whose proxy disconnected stays
// for a grace period (so control-plane blips and proxy restarts do not
// empty a service), then leaves.
package registry
