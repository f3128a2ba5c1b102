package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshscope/meshscope/control"
)

// meshedShop is what a user would pipe through `meshscope inject`: web
// (version label v2) calls catalog (v1) through HTTP_PROXY.
const meshedShop = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app.kubernetes.io/name: web}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: web, version: v2}
      annotations: {meshscope.io/upstreams: catalog}
    spec:
      containers: [{name: web, image: shop/web, ports: [{containerPort: %d}]}]
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec: {selector: {app: catalog}, ports: [{port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: catalog, namespace: shop}
spec:
  selector: {matchLabels: {app: catalog}}
  template:
    metadata:
      labels: {app: catalog, version: v1}
    spec:
      containers: [{name: catalog, image: shop/catalog, ports: [{containerPort: %d}]}]
`

// TestKubernetesInjectedSidecars runs the sidecars `meshscope inject`
// writes, as the kubelet would: each pod gets its own loopback address as
// pod IP and localhost, $(VAR) arguments are expanded and the downward-API
// variables filled from the pod's labels. The proxies name themselves from
// those variables alone (no --service/--version), register their pod-IP
// inbound address with the control plane, and web's HTTP_PROXY request for
// http://catalog/ reaches the catalog app through both proxies.
func TestKubernetesInjectedSidecars(t *testing.T) {
	serverBin, proxyBin := binaries(t)
	s := startServer(t)
	podIP := map[string]string{"web": "127.0.0.3", "catalog": "127.0.0.2"}
	appPort := map[string]int{}
	for name, ip := range podIP {
		ln, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatal(err)
		}
		appPort[name] = ln.Addr().(*net.TCPAddr).Port
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s app: %s\n", name, r.URL.Path)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
	}

	cmd := exec.Command(serverBin, "inject", "--control-plane", "http://"+s.http, "--collector", s.otlpGRPC, "--token-secret", "")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(meshedShop, appPort["web"], appPort["catalog"]))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("meshscope inject: %v\n%s", err, stderr.String())
	}
	if got := stderr.String(); got != "deployment shop/web injected\ndeployment shop/catalog injected\n" {
		t.Errorf("inject reported %q", got)
	}

	for _, doc := range strings.Split(string(out), "\n---\n") {
		var d appsv1.Deployment
		if !strings.Contains(doc, "kind: Deployment") {
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), &d); err != nil {
			t.Fatalf("injected Deployment does not decode strictly: %v\n%s", err, doc)
		}
		ip := podIP[d.Name]
		sc := d.Spec.Template.Spec.InitContainers[0]
		env := map[string]string{}
		for _, e := range sc.Env {
			switch path := e.ValueFrom.FieldRef.FieldPath; {
			case path == "status.podIP":
				env[e.Name] = ip
			case strings.HasPrefix(path, "metadata.labels['"):
				env[e.Name] = d.Spec.Template.Labels[strings.TrimSuffix(strings.TrimPrefix(path, "metadata.labels['"), "']")]
			default:
				t.Fatalf("%s: env %s from %s", d.Name, e.Name, path)
			}
		}
		var args []string
		for _, a := range sc.Args {
			for k, v := range env {
				a = strings.ReplaceAll(a, "$("+k+")", v)
			}
			if !strings.HasPrefix(a, "--control-plane=") && !strings.HasPrefix(a, "--collector=") { // the server runs on 127.0.0.1
				a = strings.ReplaceAll(a, "127.0.0.1:", ip+":") // the pod's own localhost
			}
			args = append(args, a)
		}
		for _, a := range args {
			if strings.HasPrefix(a, "--service") || strings.HasPrefix(a, "--version") {
				t.Fatalf("%s: the sidecar is named by flag %s, not by its labels", d.Name, a)
			}
		}
		t.Setenv("MESHSCOPE_SERVICE", env["MESHSCOPE_SERVICE"])
		t.Setenv("MESHSCOPE_VERSION", env["MESHSCOPE_VERSION"])
		p := startProc(t, d.Name+"-proxy", proxyBin, args...)
		waitReady(t, p, "http://"+ip+":4191/ready", 60*time.Second)
	}

	poll(t, 30*time.Second, "both sidecars registered with their pod IP and label version", func() (bool, string) {
		var v control.EndpointsView
		if err := getJSON(s.url(control.APIPrefix+"/endpoints"), &v); err != nil {
			return false, err.Error()
		}
		got := map[string]string{}
		for _, e := range v.Endpoints {
			got[e.Service+"@"+e.Address] = e.Version
		}
		return got["web@127.0.0.3:4143"] == "v2" && got["catalog@127.0.0.2:4143"] == "v1", fmt.Sprint(got)
	}, s.proc)

	// The web app's HTTP client, configured by the injected HTTP_PROXY.
	proxyURL, _ := url.Parse(strings.Replace("http://127.0.0.1:4140", "127.0.0.1", podIP["web"], 1))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	poll(t, 30*time.Second, "http://catalog/items through web's forward proxy", func() (bool, string) {
		res, err := client.Get("http://catalog/items")
		if err != nil {
			return false, err.Error()
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode == http.StatusOK && string(body) == "catalog app: /items\n", fmt.Sprintf("%d %q", res.StatusCode, body)
	}, s.proc)

	poll(t, 60*time.Second, "the web -> catalog edge in the graph", func() (bool, string) {
		var g graph
		if err := getJSON(s.url("/api/mesh/graph"), &g); err != nil {
			return false, err.Error()
		}
		for _, e := range g.Edges {
			if e.Source == "web" && e.Target == "catalog" {
				return true, ""
			}
		}
		client.Get("http://catalog/items") // keep traffic flowing while the graph window fills
		return false, g.summary()
	}, s.proc)
}
