package kubernetes

import (
	"bytes"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/meshscope/meshscope/deploy/inject"
)

// Objects are the rendered manifests, decoded strictly, by kind.
type Objects struct {
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	Deployments     []*appsv1.Deployment
	Services        []*corev1.Service
	ConfigMaps      []*corev1.ConfigMap
	PVCs            []*corev1.PersistentVolumeClaim
	PDBs            []*policyv1.PodDisruptionBudget
	NetworkPolicies []*networkingv1.NetworkPolicy
}

// Decode splits a YAML stream and decodes every document strictly into its
// Kubernetes API type, as the API server's strict field validation does:
// an unknown or duplicate field, a wrong type, or a kind this deployment
// does not use is an error naming the document.
func Decode(stream []byte) (*Objects, error) {
	o := &Objects{}
	for i, doc := range bytes.Split(stream, []byte("\n---\n")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		j, err := yaml.YAMLToJSONStrict(doc)
		if err == nil {
			err = yaml.Unmarshal(doc, &tm)
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		var dst any
		switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
		case "v1/Namespace":
			dst = appendNew(&o.Namespaces)
		case "v1/ServiceAccount":
			dst = appendNew(&o.ServiceAccounts)
		case "apps/v1/Deployment":
			dst = appendNew(&o.Deployments)
		case "v1/Service":
			dst = appendNew(&o.Services)
		case "v1/ConfigMap":
			dst = appendNew(&o.ConfigMaps)
		case "v1/PersistentVolumeClaim":
			dst = appendNew(&o.PVCs)
		case "policy/v1/PodDisruptionBudget":
			dst = appendNew(&o.PDBs)
		case "networking.k8s.io/v1/NetworkPolicy":
			dst = appendNew(&o.NetworkPolicies)
		default:
			return nil, fmt.Errorf("document %d: %s is not a kind these manifests use (add it to Decode)", i+1, gvk)
		}
		if err := strict(j, dst); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, tm.Kind, err)
		}
	}
	return o, nil
}

// DecodeKustomization strictly decodes a kustomization.yaml.
func DecodeKustomization(data []byte) (*types.Kustomization, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	k := &types.Kustomization{}
	return k, strict(j, k)
}

func appendNew[T any](list *[]*T) *T {
	v := new(T)
	*list = append(*list, v)
	return v
}

func strict(j []byte, v any) error { return inject.DecodeStrict(j, v) }
