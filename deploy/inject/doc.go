// Package inject implements `meshscope inject`: it reads Kubernetes YAML
// (multi-document streams and v1 Lists) and writes it back with the
// meshscope-proxy sidecar added to every Deployment, StatefulSet and
// DaemonSet, like `linkerd inject`. Other documents pass through byte for
// byte. The sidecar runs in forward-proxy mode (the app's HTTP_PROXY points
// at it; no iptables, no NET_ADMIN) as a native sidecar, and reads its
// service and version from the pod's labels through the downward API.
// See docs/kubernetes.md.
package inject
