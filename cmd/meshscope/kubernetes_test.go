package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/demo/freeport"
	"github.com/meshscope/meshscope/deploy/kubernetes"
)

func serverContainer(t *testing.T, overlay string) corev1.Container {
	t.Helper()
	out, err := kubernetes.Render("overlays/" + overlay)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kubernetes.Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	c := objs.Deployments[0].Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Command, []string{"meshscope"}) || len(c.Args) == 0 || c.Args[0] != "server" {
		t.Fatalf("%s: container runs %v %v, want meshscope server", overlay, c.Command, c.Args)
	}
	return c
}

// Every argument the manifests give the server is a flag `meshscope
// server` defines, and every literal value parses with that flag's own
// parser ($(VAR) values are the kubelet's to fill in).
func TestKubernetesServerFlags(t *testing.T) {
	for _, overlay := range kubernetes.Overlays {
		c := serverContainer(t, overlay)
		cfg := defaultServerConfig()
		fs := flag.NewFlagSet("meshscope server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		bindServerFlags(fs, &cfg)
		for _, a := range c.Args[1:] {
			name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if !strings.HasPrefix(a, "--") || !ok {
				t.Errorf("%s: argument %q: want --flag=value", overlay, a)
				continue
			}
			if fs.Lookup(name) == nil {
				t.Errorf("%s: --%s is not a meshscope server flag", overlay, name)
				continue
			}
			if !strings.Contains(value, "$(") {
				if err := fs.Set(name, value); err != nil {
					t.Errorf("%s: --%s=%s: %v", overlay, name, value, err)
				}
			}
		}
	}
}

// The probe paths of the manifests answer 200 on a real server started
// with the manifests' own arguments (moved to loopback ports and a temp
// data directory) and an auth file: the kubelet sends no token.
func TestKubernetesProbesOnRealServer(t *testing.T) {
	c := serverContainer(t, "single")
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth.yaml")
	tok, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authFile, []byte("tokens:\n"+auth.TokenLine("probe-test", auth.RoleViewer, tok)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	free, err := freeport.Addrs(3)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"server"}
	for _, a := range c.Args[1:] {
		name, value, _ := strings.Cut(a, "=")
		switch name {
		case "--http", "--otlp-grpc", "--otlp-http":
			value, free = free[0], free[1:]
			ports[name] = value
		case "--data":
			value = filepath.Join(dir, "data")
		case "--auth-file":
			value = authFile
		}
		args = append(args, name+"="+value)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	go func() { done <- run(ctx, args, io.Discard, logFile) }()
	serverLog := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	defer func() {
		cancel()
		<-done
	}()
	httpPort := ports["--http"]
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		url := fmt.Sprintf("http://%s%s", httpPort, p.HTTPGet.Path)
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("probe %s never answered 200 (last: %v %v)\n%s", url, resp, err, serverLog())
			}
			select {
			case code := <-done:
				done <- code
				t.Fatalf("server exited %d:\n%s", code, serverLog())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	// And the same listener refuses the API without a token: auth is on.
	resp, err := http.Get(fmt.Sprintf("http://%s/api/v1/query?query=up", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without a token: %d, want 401", resp.StatusCode)
	}
}
