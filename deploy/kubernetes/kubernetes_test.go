package kubernetes

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/meshscope/meshscope/control/auth"
)

// userSecrets are the Secrets the operator creates (docs/kubernetes.md
// says how); the manifests reference them and never ship them.
var userSecrets = []string{"meshscope-auth", "meshscope-ca", "meshscope-clickhouse"}

func render(t *testing.T, overlay string) *Objects {
	t.Helper()
	out, err := Render("overlays/" + overlay)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatalf("%s: %v", overlay, err)
	}
	return objs
}

// Every file of the base and the overlays decodes strictly on its own:
// kustomizations into Kustomize's type, manifests and strategic-merge
// patches into the Kubernetes API types, JSON patches as RFC 6902 ops.
func TestEveryFileDecodesStrictly(t *testing.T) {
	n := 0
	err := filepath.WalkDir(Dir(), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".yaml" {
			return err
		}
		n++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(Dir(), path)
		switch {
		case filepath.Base(path) == "kustomization.yaml":
			if _, err := DecodeKustomization(data); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		case strings.HasPrefix(string(bytes.TrimLeft(stripComments(data), "\n")), "- op:"):
			var ops []struct {
				Op    string `json:"op"`
				Path  string `json:"path"`
				Value any    `json:"value"`
			}
			j, err := yaml.YAMLToJSONStrict(data)
			if err == nil {
				err = strict(j, &ops)
			}
			if err != nil || len(ops) == 0 {
				t.Errorf("%s: JSON patch: %v", rel, err)
			}
		default:
			if _, err := Decode(data); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
		}
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}

func stripComments(b []byte) []byte {
	return regexp.MustCompile(`(?m)^#.*$`).ReplaceAll(b, nil)
}

// Decode rejects what the API server's strict validation rejects.
func TestDecodeIsStrict(t *testing.T) {
	for _, in := range []string{
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: three}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nmetadata: {name: y}\n",
		"apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n",
	} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("accepted:\n%s", in)
		}
	}
}

func TestOverlays(t *testing.T) {
	for _, overlay := range Overlays {
		t.Run(overlay, func(t *testing.T) {
			o := render(t, overlay)
			if len(o.Deployments) != 1 || len(o.Services) != 3 || len(o.PDBs) != 1 || len(o.NetworkPolicies) < 3 {
				t.Fatalf("rendered %d deployments, %d services, %d PDBs, %d network policies", len(o.Deployments), len(o.Services), len(o.PDBs), len(o.NetworkPolicies))
			}
			d := o.Deployments[0]
			checkSelectors(t, o, d)
			checkPorts(t, o, d)
			checkPodSecurity(t, d)
			checkVolumes(t, o, d)
			checkProbes(t, d)
			for _, sa := range o.ServiceAccounts {
				if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
					t.Errorf("ServiceAccount %s mounts an API token; the server never calls the API", sa.Name)
				}
			}
			if d.Spec.Template.Spec.ServiceAccountName != o.ServiceAccounts[0].Name {
				t.Errorf("pod runs as %q, not the ServiceAccount %q", d.Spec.Template.Spec.ServiceAccountName, o.ServiceAccounts[0].Name)
			}
			var all []metav1.Object
			for _, list := range [][]metav1.Object{objList(o.ServiceAccounts), objList(o.Deployments), objList(o.Services), objList(o.ConfigMaps), objList(o.PVCs), objList(o.PDBs), objList(o.NetworkPolicies)} {
				all = append(all, list...)
			}
			for _, obj := range all {
				if obj.GetNamespace() != "meshscope" {
					t.Errorf("%s is in namespace %q, want meshscope", obj.GetName(), obj.GetNamespace())
				}
			}
		})
	}
}

func TestSingleOverlay(t *testing.T) {
	o := render(t, "single")
	d := o.Deployments[0]
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("single: replicas %d strategy %q, want 1 and Recreate (one owner of the volume)", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	data := volume(d, "data")
	if data == nil || data.PersistentVolumeClaim == nil || data.EmptyDir != nil {
		t.Fatalf("single: data volume %+v, want only the PVC", data)
	}
	if len(o.PVCs) != 1 || o.PVCs[0].Name != data.PersistentVolumeClaim.ClaimName {
		t.Errorf("single: data claims %q, rendered PVCs %v", data.PersistentVolumeClaim.ClaimName, o.PVCs)
	}
	if hasArg(d, "--state-store") || hasArg(d, "--metrics-store") {
		t.Errorf("single: shared stores configured: %v", d.Spec.Template.Spec.Containers[0].Args)
	}
}

func TestHAOverlay(t *testing.T) {
	o := render(t, "ha")
	d := o.Deployments[0]
	spec := d.Spec.Template.Spec
	if *d.Spec.Replicas != 3 {
		t.Errorf("ha: %d replicas", *d.Spec.Replicas)
	}
	aa := spec.Affinity.PodAntiAffinity
	if len(aa.RequiredDuringSchedulingIgnoredDuringExecution) != 1 || aa.PreferredDuringSchedulingIgnoredDuringExecution != nil {
		t.Fatalf("ha: anti-affinity %+v, want one required term", aa)
	}
	term := aa.RequiredDuringSchedulingIgnoredDuringExecution[0]
	sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) || term.TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("ha: anti-affinity term %+v does not keep servers apart", term)
	}
	for _, flag := range []string{"--state-store=etcd", "--etcd-endpoints", "--metrics-store=remote", "--remote-write-url", "--prometheus-url", "--trace-store=clickhouse", "--clickhouse-dsn", "--ca-cert", "--ca-key"} {
		if !hasArg(d, flag) {
			t.Errorf("ha: no %s argument", flag)
		}
	}
	if v := volume(d, "data"); v == nil || v.EmptyDir == nil {
		t.Errorf("ha: data volume %+v, want an emptyDir (the servers are stateless)", v)
	}
	if len(o.ConfigMaps) != 1 || !strings.HasPrefix(o.ConfigMaps[0].Name, "meshscope-stores-") {
		t.Fatalf("ha: config maps %v, want the hashed meshscope-stores", o.ConfigMaps)
	}
}

// Every $(VAR) in an argument is an env var of the container, and every
// env var from a ConfigMap names a rendered ConfigMap and key.
func TestArgumentVariablesResolve(t *testing.T) {
	for _, overlay := range Overlays {
		o := render(t, overlay)
		for _, c := range o.Deployments[0].Spec.Template.Spec.Containers {
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				env[e.Name] = e
			}
			for _, a := range c.Args {
				for _, m := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(a, -1) {
					if _, ok := env[m[1]]; !ok {
						t.Errorf("%s: %s uses $(%s), which the container does not define", overlay, a, m[1])
					}
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					i := slices.IndexFunc(o.ConfigMaps, func(cm *corev1.ConfigMap) bool { return cm.Name == r.Name })
					if i < 0 || o.ConfigMaps[i].Data[r.Key] == "" {
						t.Errorf("%s: env %s: ConfigMap %s key %s is not rendered", overlay, e.Name, r.Name, r.Key)
					}
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && !slices.Contains(userSecrets, r.Name) {
					t.Errorf("%s: env %s: Secret %s is not one docs/kubernetes.md tells operators to create", overlay, e.Name, r.Name)
				}
			}
		}
	}
}

// The secrets the manifests need are the ones the install guide creates.
func TestDocsNameTheSecrets(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(Dir(), "..", "..", "docs", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(slices.Clone(userSecrets), "meshscope-proxy-token") {
		if !bytes.Contains(doc, []byte("kubectl -n ")) || !bytes.Contains(doc, []byte("create secret")) || !bytes.Contains(doc, []byte(" "+s+" ")) {
			t.Errorf("docs/kubernetes.md does not show how to create the Secret %s", s)
		}
	}
}

func checkSelectors(t *testing.T, o *Objects, d *appsv1.Deployment) {
	t.Helper()
	pod := labels.Set(d.Spec.Template.Labels)
	matches := func(what string, ls *metav1.LabelSelector) {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil || sel.Empty() || !sel.Matches(pod) {
			t.Errorf("%s selector %v does not select the server pods %v (%v)", what, ls, pod, err)
		}
	}
	matches("Deployment", d.Spec.Selector)
	for _, p := range o.PDBs {
		matches("PodDisruptionBudget "+p.Name, p.Spec.Selector)
	}
	for _, s := range o.Services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(pod) || len(s.Spec.Selector) == 0 {
			t.Errorf("Service %s selector %v does not select the server pods", s.Name, s.Spec.Selector)
		}
	}
	for _, np := range o.NetworkPolicies {
		if len(np.Spec.PodSelector.MatchLabels) == 0 {
			continue // the namespace's default deny
		}
		matches("NetworkPolicy "+np.Name, &np.Spec.PodSelector)
	}
	for _, term := range d.Spec.Template.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		matches("anti-affinity", term.PodAffinityTerm.LabelSelector)
	}
}

// Services target ports the container declares; NetworkPolicies admit
// exactly ports that some Service exposes; nothing else is admitted.
func checkPorts(t *testing.T, o *Objects, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	byName := map[string]int32{}
	for _, p := range c.Ports {
		byName[p.Name] = p.ContainerPort
	}
	resolve := func(p intstr.IntOrString) (int32, bool) {
		if p.Type == intstr.String {
			n, ok := byName[p.StrVal]
			return n, ok
		}
		return p.IntVal, slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == p.IntVal })
	}
	served := map[int32]bool{}
	for _, s := range o.Services {
		for _, sp := range s.Spec.Ports {
			n, ok := resolve(sp.TargetPort)
			if !ok {
				t.Errorf("Service %s port %s targets %s, which the container does not declare", s.Name, sp.Name, sp.TargetPort.String())
			}
			served[n] = true
		}
	}
	admitted := map[int32]bool{}
	for _, np := range o.NetworkPolicies {
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("NetworkPolicy %s admits every port", np.Name)
			}
			for _, p := range rule.Ports {
				n, ok := resolve(*p.Port)
				if !ok || !served[n] {
					t.Errorf("NetworkPolicy %s admits port %s, which no Service exposes", np.Name, p.Port.String())
				}
				admitted[n] = true
			}
		}
	}
	for n := range served {
		if !admitted[n] {
			t.Errorf("port %d is exposed by a Service but no NetworkPolicy admits it", n)
		}
	}
	// Meshed namespaces reach OTLP and the control stream; the admin
	// namespace reaches the UI; nothing admits everyone.
	for _, np := range o.NetworkPolicies {
		for _, rule := range np.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) == 0 && len(peer.NamespaceSelector.MatchExpressions) == 0 {
					t.Errorf("NetworkPolicy %s admits every namespace", np.Name)
				}
			}
		}
	}
}

func checkPodSecurity(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 || ps.SeccompProfile == nil {
		t.Errorf("pod securityContext %+v: want non-root, a non-zero UID and a seccomp profile", ps)
	}
	if a := d.Spec.Template.Spec.AutomountServiceAccountToken; a == nil || *a {
		t.Error("the pod mounts a ServiceAccount token")
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s securityContext %+v: want a read-only root, no privilege escalation, ALL capabilities dropped", c.Name, sc)
		} else if (sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot) || (sc.RunAsUser != nil && *sc.RunAsUser == 0) || sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s securityContext overrides the pod's non-root user: %+v", c.Name, sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s resources %+v: want CPU and memory requests and a memory limit", c.Name, c.Resources)
		}
	}
}

// Every mount names a volume, the data directory is a mount (the root file
// system is read-only), and every Secret volume is one the docs create.
func checkVolumes(t *testing.T, o *Objects, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	for _, m := range c.VolumeMounts {
		if volume(d, m.Name) == nil {
			t.Errorf("mount %s names no volume", m.Name)
		}
	}
	for _, dir := range []string{"/data", "/tmp"} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir }) {
			t.Errorf("%s is not a volume, and the root file system is read-only", dir)
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && !slices.Contains(userSecrets, v.Secret.SecretName) {
			t.Errorf("volume %s: Secret %s is not one docs/kubernetes.md creates", v.Name, v.Secret.SecretName)
		}
	}
	// Files the arguments name live on a mounted volume.
	for _, a := range c.Args {
		_, val, _ := strings.Cut(a, "=")
		if strings.HasPrefix(val, "/etc/") && !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(val, m.MountPath+"/") }) {
			t.Errorf("%s names a file on no mounted volume", a)
		}
	}
}

// Probes use the server's health endpoints on a declared port, and those
// endpoints need no token (the kubelet sends none).
func checkProbes(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no %s probe", name)
			continue
		}
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.HTTPGet.Port.StrVal }) {
			t.Errorf("%s probe port %s is not a container port", name, p.HTTPGet.Port.String())
		}
		r, _ := http.NewRequest(http.MethodGet, p.HTTPGet.Path, nil)
		if auth.Classify(r) != auth.PermPublic {
			t.Errorf("%s probe %s needs a token: the kubelet would get 401", name, p.HTTPGet.Path)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet.Path != "/-/healthy" {
		t.Errorf("liveness probes %s; it must not fail while the server is busy starting (use /-/healthy)", c.LivenessProbe.HTTPGet.Path)
	}
}

func objList[T metav1.Object](list []T) []metav1.Object {
	out := make([]metav1.Object, len(list))
	for i, v := range list {
		out[i] = v
	}
	return out
}

func volume(d *appsv1.Deployment, name string) *corev1.Volume {
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func hasArg(d *appsv1.Deployment, prefix string) bool {
	return slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Args, func(a string) bool { return strings.HasPrefix(a, prefix) })
}
