// Package kubernetes holds Meshscope's Kubernetes manifests (a Kustomize
// base and the single and ha overlays, see docs/kubernetes.md) and renders
// them with the real Kustomize library, so tests can decode the output
// strictly with the Kubernetes API types. No binary imports it.
package kubernetes
