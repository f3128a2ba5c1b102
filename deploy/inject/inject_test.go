package inject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshscope/meshscope/proxy"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func staticOptions() Options {
	o := DefaultOptions()
	o.ControlPlane, o.TokenSecret = "", ""
	return o
}

var goldenCases = []struct {
	name     string
	opts     Options
	outcomes []Outcome
}{
	{"deployment", DefaultOptions(), []Outcome{{"Deployment shop/web", Injected}}},
	{"list", DefaultOptions(), []Outcome{{"StatefulSet shop/db", Injected}}},
	{"daemonset", DefaultOptions(), []Outcome{{"DaemonSet ops/node-agent", Injected}, {"Deployment ops/legacy", Skipped}}},
	{"static", staticOptions(), []Outcome{{"Deployment api", Injected}}},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			in := readFile(t, tc.name+".yaml")
			out, outcomes, err := Transform(in, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(outcomes, tc.outcomes) {
				t.Errorf("outcomes %v, want %v", outcomes, tc.outcomes)
			}
			golden := filepath.Join("testdata", tc.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := readFile(t, tc.name+".golden.yaml"); !bytes.Equal(out, want) {
				t.Errorf("output differs from %s (go test -run TestGolden -update to accept):\n%s", golden, out)
			}
		})
	}
}

// Injecting twice changes nothing: same bytes, every workload unchanged.
func TestIdempotent(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			once, _, err := Transform(readFile(t, tc.name+".yaml"), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			twice, outcomes, err := Transform(once, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(once, twice) {
				t.Errorf("second injection changed the output:\n%s", twice)
			}
			for _, oc := range outcomes {
				if oc.Action == Injected {
					t.Errorf("%s injected again", oc.Object)
				}
			}
		})
	}
	// New options replace the old sidecar rather than adding a second.
	once, _, err := Transform(readFile(t, "static.yaml"), staticOptions())
	if err != nil {
		t.Fatal(err)
	}
	o := staticOptions()
	o.Image = "registry.example/meshscope-proxy:2"
	again, outcomes, err := Transform(once, o)
	if err != nil || len(outcomes) != 1 || outcomes[0].Action != Injected {
		t.Fatalf("re-injection with a new image: %v %v", outcomes, err)
	}
	pod := decodeWorkloads(t, again)[0]
	if n := len(pod.Spec.InitContainers); n != 1 || pod.Spec.InitContainers[0].Image != o.Image {
		t.Errorf("init containers after re-injection: %+v", pod.Spec.InitContainers)
	}
	if n := len(pod.Spec.Volumes); n != 1 {
		t.Errorf("volumes after re-injection: %+v", pod.Spec.Volumes)
	}
}

// Documents that are not workloads, and workloads that opt out, are
// written byte for byte as read.
func TestUntouchedDocuments(t *testing.T) {
	for _, name := range []string{"deployment", "daemonset"} {
		in := readFile(t, name+".yaml")
		out, _, err := Transform(in, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		inDocs, _ := splitDocuments(in)
		outDocs, _ := splitDocuments(out)
		if len(inDocs) != len(outDocs) {
			t.Fatalf("%s: %d documents in, %d out", name, len(inDocs), len(outDocs))
		}
		same := 0
		for i := range inDocs {
			if bytes.Equal(inDocs[i].raw, outDocs[i].raw) {
				same++
			}
		}
		if same != len(inDocs)-1 {
			t.Errorf("%s: %d of %d documents unchanged, want all but the injected one", name, same, len(inDocs))
		}
	}
}

// The injected sidecar is a working proxy command line: every argument is
// a flag meshscope-proxy defines, and after the kubelet expands $(POD_IP)
// and the downward API fills MESHSCOPE_SERVICE/VERSION from the labels,
// the proxy's own parser and Validate accept it. Probes name its ports and
// the app's HTTP_PROXY is its forward-proxy listener.
func TestSidecarIsAValidProxy(t *testing.T) {
	for _, tc := range goldenCases {
		out, _, err := Transform(readFile(t, tc.name+".yaml"), tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, pod := range decodeWorkloads(t, out) {
			if pod.Labels["app"] == "legacy" { // meshscope.io/inject: disabled
				if len(pod.Spec.InitContainers) > 0 {
					t.Errorf("%s: the disabled workload got init containers", tc.name)
				}
				continue
			}
			sc := pod.Spec.InitContainers[0]
			if sc.Name != ProxyName || sc.RestartPolicy == nil || *sc.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Fatalf("%s: first init container %q is not the native sidecar", tc.name, sc.Name)
			}
			env := map[string]string{"POD_IP": "10.1.2.3"}
			for _, e := range sc.Env {
				if f := e.ValueFrom; f != nil && f.FieldRef != nil && strings.HasPrefix(f.FieldRef.FieldPath, "metadata.labels['") {
					label := strings.TrimSuffix(strings.TrimPrefix(f.FieldRef.FieldPath, "metadata.labels['"), "']")
					v, ok := pod.Labels[label]
					if !ok {
						t.Fatalf("%s: %s reads label %q the pod does not have", tc.name, e.Name, label)
					}
					env[e.Name] = v
				}
			}
			var args []string
			for _, a := range sc.Args {
				args = append(args, os.Expand(strings.NewReplacer("$(", "${", ")", "}").Replace(a), func(k string) string { return env[k] }))
			}
			cfg := proxy.DefaultConfig()
			cfg.Service, cfg.Version = env["MESHSCOPE_SERVICE"], cmpOr(env["MESHSCOPE_VERSION"], cfg.Version)
			var opaque []string
			fs := flag.NewFlagSet("meshscope-proxy", flag.ContinueOnError)
			fs.SetOutput(new(bytes.Buffer))
			proxy.BindFlags(fs, &cfg, &opaque)
			if err := fs.Parse(args); err != nil {
				t.Fatalf("%s: proxy flags %v: %v", tc.name, args, err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%s: proxy config from %v: %v", tc.name, args, err)
			}
			if cfg.Service != pod.Labels[firstLabel(pod.Labels, labelName, labelApp)] {
				t.Errorf("%s: service %q not from the pod's name label", tc.name, cfg.Service)
			}
			if cfg.HTTPProxy != strings.TrimPrefix(httpProxyValue, "http://") {
				t.Errorf("%s: --http-proxy %q, apps get HTTP_PROXY=%s", tc.name, cfg.HTTPProxy, httpProxyValue)
			}
			names := map[string]bool{}
			for _, p := range sc.Ports {
				names[p.Name] = true
			}
			for _, pr := range []*corev1.Probe{sc.StartupProbe, sc.ReadinessProbe, sc.LivenessProbe} {
				if pr == nil || !names[pr.HTTPGet.Port.StrVal] {
					t.Errorf("%s: probe %+v names no sidecar port", tc.name, pr)
				}
			}
			for _, c := range pod.Spec.Containers {
				if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "HTTP_PROXY" && e.Value == httpProxyValue }) {
					t.Errorf("%s: container %s has no HTTP_PROXY", tc.name, c.Name)
				}
			}
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestErrors(t *testing.T) {
	deployment := func(tmpl string) string {
		return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n" + tmpl
	}
	pod := "    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}]}]}\n"
	tests := []struct {
		name, in, want string
	}{
		{"not yaml", "kind: [", "document 1: not valid YAML"},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", "document 1: kind: missing"},
		{"scalar document", "just a string\n", "document 1: not a Kubernetes object"},
		{"old apiVersion", "kind: ConfigMap\napiVersion: v1\n---\napiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: old}\n",
			`document 2 (Deployment old): apiVersion: "extensions/v1beta1"`},
		{"unknown field", deployment("    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: web, portz: []}]}\n"),
			`document 1 (Deployment shop/web): unknown field "spec.template.spec.containers[0].portz"`},
		{"duplicate key", deployment(pod) + "  replicas: 1\n  replicas: 2\n", "document 1: not valid YAML"},
		{"wrong type", deployment("    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: web, ports: [{containerPort: http}]}]}\n"),
			"document 1 (Deployment shop/web): json: cannot unmarshal string"},
		{"bad inject annotation", deployment("    metadata: {labels: {app: web}, annotations: {meshscope.io/inject: maybe}}\n    spec: {containers: [{name: web, image: web}]}\n"),
			`spec.template.metadata.annotations[meshscope.io/inject]: "maybe": want enabled or disabled`},
		{"bad mode annotation", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, annotations: {meshscope.io/mode: audit}}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n" + pod,
			`metadata.annotations[meshscope.io/mode]: "audit": want observe or enforce`},
		{"no name label", deployment("    metadata: {labels: {tier: web}}\n    spec: {containers: [{name: web, image: web}]}\n"),
			"spec.template.metadata.labels: no app.kubernetes.io/name or app label"},
		{"bad version label", deployment("    metadata: {labels: {app: web, version: \"v 2\"}}\n    spec: {containers: [{name: web, image: web}]}\n"),
			`spec.template.metadata.labels[version]: "v 2" is not a version`},
		{"port taken", deployment("    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: web, ports: [{containerPort: 8080}, {containerPort: 4191}]}]}\n"),
			"spec.template.spec.containers[0].ports[1].containerPort: 4191 is the meshscope-proxy's --admin port"},
		{"bad inbound port", deployment("    metadata: {labels: {app: web}, annotations: {meshscope.io/inbound-port: \"99999\"}}\n    spec: {containers: [{name: web, image: web}]}\n"),
			`annotations[meshscope.io/inbound-port]: "99999": want a port number`},
		{"bad upstream", deployment("    metadata: {labels: {app: web}, annotations: {meshscope.io/upstreams: \"catalog,,x\"}}\n    spec: {containers: [{name: web, image: web}]}\n"),
			`annotations[meshscope.io/upstreams]: "" is not a service name`},
		{"own HTTP_PROXY", deployment("    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: web, env: [{name: HTTP_PROXY, value: \"http://corp:3128\"}]}]}\n"),
			`spec.template.spec.containers[0].env[0] (HTTP_PROXY): already set to "http://corp:3128"`},
		{"host network", deployment("    metadata: {labels: {app: web}}\n    spec: {hostNetwork: true, containers: [{name: web, image: web}]}\n"),
			"spec.template.spec.hostNetwork: true"},
		{"no containers", deployment("    metadata: {labels: {app: web}}\n    spec: {containers: []}\n"), "spec.template.spec.containers: no container"},
		{"list item", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap}\n- {apiVersion: apps/v1, kind: DaemonSet, metadata: {name: d}, spec: {template: {spec: {containerz: []}}}}\n",
			`document 1 (List): items[1] (DaemonSet d): unknown field "spec.template.spec.containerz"`},
		{"list unknown field", "apiVersion: v1\nkind: List\nitemz: []\n", `document 1 (List): unknown field "itemz"`},
		{"separator with content", "a: 1\n--- b: 2\n", `line 2: content after the document separator`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Transform([]byte(tt.in), DefaultOptions())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no image", func(o *Options) { o.Image = "" }, "--proxy-image"},
		{"bad control plane", func(o *Options) { o.ControlPlane = "meshscope:7070" }, "--control-plane"},
		{"bad collector", func(o *Options) { o.Collector = "meshscope" }, "--collector"},
		{"bad secret", func(o *Options) { o.TokenSecret = "Not_A_Name" }, "--token-secret"},
		{"bad mode", func(o *Options) { o.Mode = "audit" }, "--mode"},
	}
	if err := DefaultOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tt := range tests {
		o := DefaultOptions()
		tt.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	in := readFile(t, "daemonset.yaml")
	if code := Run([]string{"--mode", "enforce"}, bytes.NewReader(in), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "--mode=enforce") {
		t.Errorf("--mode enforce not applied:\n%s", stdout.String())
	}
	if got, want := stderr.String(), "daemonset ops/node-agent injected\ndeployment ops/legacy skipped\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	stdout.Reset()
	stderr.Reset()
	if code := Run([]string{"-f", filepath.Join("testdata", "nope.yaml")}, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "nope.yaml") {
		t.Errorf("missing file: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := Run([]string{"--mode", "audit"}, nil, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--mode") {
		t.Errorf("bad flag: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := Run(nil, strings.NewReader("kind: [\n"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "stdin: document 1") {
		t.Errorf("bad input: exit %d, %q", code, stderr.String())
	}
}

// FuzzTransform: any input either fails with an error or yields a stream
// that injects to itself (idempotence) and never panics.
func FuzzTransform(f *testing.F) {
	for _, tc := range goldenCases {
		b, err := os.ReadFile(filepath.Join("testdata", tc.name+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: []\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, _, err := Transform(in, DefaultOptions())
		if err != nil {
			return
		}
		again, _, err := Transform(out, DefaultOptions())
		if err != nil {
			t.Fatalf("output does not inject again: %v\ninput:\n%s\noutput:\n%s", err, in, out)
		}
		if !bytes.Equal(out, again) {
			t.Fatalf("not idempotent\nfirst:\n%s\nsecond:\n%s", out, again)
		}
	})
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeWorkloads strictly decodes the injected workloads of a stream
// (Lists included) and returns their pod templates.
func decodeWorkloads(t *testing.T, stream []byte) []corev1.PodTemplateSpec {
	t.Helper()
	docs, err := splitDocuments(stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.PodTemplateSpec
	var visit func(j []byte)
	visit = func(j []byte) {
		tm, err := peekType(j)
		if err != nil {
			t.Fatal(err)
		}
		switch tm.Kind {
		case "Deployment":
			var d appsv1.Deployment
			mustStrict(t, j, &d)
			out = append(out, d.Spec.Template)
		case "StatefulSet":
			var s appsv1.StatefulSet
			mustStrict(t, j, &s)
			out = append(out, s.Spec.Template)
		case "DaemonSet":
			var s appsv1.DaemonSet
			mustStrict(t, j, &s)
			out = append(out, s.Spec.Template)
		case "List":
			var l struct {
				APIVersion string           `json:"apiVersion"`
				Kind       string           `json:"kind"`
				Metadata   map[string]any   `json:"metadata"`
				Items      []map[string]any `json:"items"`
			}
			mustStrict(t, j, &l)
			for _, it := range l.Items {
				b, _ := yaml.Marshal(it)
				jj, _ := yaml.YAMLToJSON(b)
				visit(jj)
			}
		}
	}
	for _, d := range docs {
		if isBlank(d.raw) {
			continue
		}
		j, err := yaml.YAMLToJSONStrict(d.raw)
		if err != nil {
			t.Fatal(err)
		}
		visit(j)
	}
	return out
}

func mustStrict(t *testing.T, j []byte, v any) {
	t.Helper()
	if err := DecodeStrict(j, v); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
}
