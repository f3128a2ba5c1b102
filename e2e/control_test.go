//go:build unix

package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
)

// startControlServer runs `meshscope server` on data with extra args.
func startControlServer(t *testing.T, data string, extra ...string) *server {
	t.Helper()
	bin, _ := binaries(t)
	a := freeAddrs(t, 1)
	s := &server{http: a[0], data: data}
	args := append([]string{"server", "--data", data, "--http", s.http, "--otlp-grpc", "off", "--otlp-http", "off"}, extra...)
	s.proc = startProc(t, "meshscope-server", bin, args...)
	waitReady(t, s.proc, s.url("/ready"), 90*time.Second)
	return s
}

const (
	inventorySplit = `kind: Route
name: inventory-split
service: inventory
mode: enforce
rules:
  - backends:
      - {version: v1, weight: 90}
      - {version: v2, weight: 10}
`
	paymentsRetries = `kind: Route
name: payments-retries
service: payments
mode: observe
timeout: 2s
retries: {attempts: 3, per_try_timeout: 500ms}
`
	paymentsOutliers = `kind: Resilience
name: payments-outliers
service: payments
outlier_detection: {}
`
)

func post(t *testing.T, rawURL, body string, out any) int {
	t.Helper()
	res, err := httpClient.Post(rawURL, "application/yaml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("POST %s: %d %s: %v", rawURL, res.StatusCode, b, err)
	}
	return res.StatusCode
}

func policies(t *testing.T, s *server, query string) control.PoliciesView {
	t.Helper()
	var v control.PoliciesView
	if err := getJSON(s.url(control.APIPrefix+"/policies"+query), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func splitOf(t *testing.T, s *server) string {
	t.Helper()
	var v control.PolicyView
	if err := getJSON(s.url(control.APIPrefix+"/policies/route/inventory-split"), &v); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, b := range v.Policy.Route().Rules[0].Backends {
		parts = append(parts, b.Version+"="+itoa(b.Weight))
	}
	return strings.Join(parts, ",")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestControlAPI drives the policy API of the real server: apply, dry
// run, malformed input, delete, history, rollback, and a restart.
func TestControlAPI(t *testing.T) {
	data := t.TempDir()
	s := startControlServer(t, data)
	api := s.url(control.APIPrefix)

	var res control.ResultView
	if code := post(t, api+"/apply", inventorySplit+"---\n"+paymentsRetries+"---\n"+paymentsOutliers, &res); code != 200 || res.Version != 1 || !res.Changed || len(res.Changes) != 3 {
		t.Fatalf("apply: %d %+v", code, res)
	}

	// Dry run: the diff, nothing applied.
	changed := strings.Replace(strings.Replace(inventorySplit, "weight: 90", "weight: 80", 1), "weight: 10", "weight: 20", 1)
	res = control.ResultView{}
	if code := post(t, api+"/apply?dry_run=1", changed, &res); code != 200 || res.Changed || !res.DryRun || res.Version != 1 {
		t.Fatalf("dry run: %d %+v", code, res)
	}
	if d := res.Changes[0].Diff; res.Changes[0].Op != "update" || !strings.Contains(d, "-         weight: 90\n") || !strings.Contains(d, "+         weight: 80\n") {
		t.Errorf("dry-run diff:\n%s", d)
	}
	if w := splitOf(t, s); w != "v1=90,v2=10" {
		t.Errorf("after dry run: %s", w)
	}

	// Malformed: 400 naming the field, and nothing applied — not even the
	// valid documents of the same request.
	var e control.ErrorView
	bad := changed + "---\nkind: Route\nname: other\nservice: cart\nrules:\n- backends:\n  - {version: v1, weight: 50}\n  - {version: v2, weight: 150}\n"
	if code := post(t, api+"/apply", bad, &e); code != 400 || !strings.Contains(e.Error, `document 2 (line 16): route "other": rules[0].backends[1].weight: must be 0..100`) {
		t.Errorf("malformed apply: %d %q", code, e.Error)
	}
	e = control.ErrorView{}
	if code := post(t, api+"/apply", changed+"    retry_on: 5xx\n", &e); code != 400 || !strings.Contains(e.Error, "retry_on: unknown field") || !strings.Contains(e.Error, "line 9") {
		t.Errorf("unknown key: %d %q", code, e.Error)
	}
	if v := policies(t, s, ""); v.Version != 1 || len(v.Policies) != 3 || splitOf(t, s) != "v1=90,v2=10" {
		t.Errorf("after malformed applies: version %d, %d policies, %s", v.Version, len(v.Policies), splitOf(t, s))
	}

	// A real change, then a delete.
	res = control.ResultView{}
	if code := post(t, api+"/apply", changed, &res); code != 200 || res.Version != 2 {
		t.Fatalf("apply change: %d %+v", code, res)
	}
	req, _ := http.NewRequest(http.MethodDelete, api+"/policies/Resilience/payments-outliers", nil)
	req.Header.Set(control.HeaderWho, "carol")
	dres, err := httpClient.Do(req)
	if err != nil || dres.StatusCode != 200 {
		t.Fatalf("delete: %v %v", dres, err)
	}
	dres.Body.Close()
	if code, _, _ := get(api + "/policies/resilience/payments-outliers"); code != 404 {
		t.Errorf("deleted policy: GET answered %d", code)
	}
	if v := policies(t, s, "?kind=route&service=payments"); len(v.Policies) != 1 || v.Policies[0].Name != "payments-retries" || v.Sources["Route/payments-retries"] != "api" {
		t.Errorf("filtered list = %+v", v)
	}

	// Crash (SIGKILL, no shutdown) and restart: every acknowledged version,
	// document and history entry is back.
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s = startControlServer(t, data)
	api = s.url(control.APIPrefix)
	var h control.HistoryView
	if err := getJSON(api+"/history", &h); err != nil {
		t.Fatal(err)
	}
	if h.Version != 3 || len(h.Entries) != 3 || h.Entries[2].Who != "carol" || h.Entries[2].Action != "delete" || h.Entries[1].Changes[0].Op != "update" {
		t.Fatalf("history after restart = %+v", h)
	}
	if w := splitOf(t, s); w != "v1=80,v2=20" {
		t.Errorf("after restart: %s", w)
	}

	// Rollback to version 1: a new version 4 with version 1's content.
	res = control.ResultView{}
	if code := post(t, api+"/rollback?version=1", "", &res); code != 200 || res.Version != 4 {
		t.Fatalf("rollback: %d %+v", code, res)
	}
	if w := splitOf(t, s); w != "v1=90,v2=10" {
		t.Errorf("after rollback: %s", w)
	}
	if v := policies(t, s, ""); len(v.Policies) != 3 {
		t.Errorf("rollback restored %d policies, want 3", len(v.Policies))
	}
	e = control.ErrorView{}
	if code := post(t, api+"/rollback?version=99", "", &e); code != 404 {
		t.Errorf("rollback to a missing version: %d %q", code, e.Error)
	}
}

// TestControlStream registers proxies over the real server's WebSocket
// and checks discovery, pushes on apply and the endpoint listing.
func TestControlStream(t *testing.T) {
	s := startControlServer(t, t.TempDir(), "--endpoint-grace", "1s")
	dial := func(h wire.Hello) (*websocket.Conn, chan *wire.Snapshot) {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.http+wire.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		h.Protocol, h.Mode = wire.Protocol, policy.ModeEnforce
		b, _ := wire.Encode(&h)
		if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatal(err)
		}
		snaps := make(chan *wire.Snapshot, 64)
		go func() {
			for {
				_, data, err := ws.ReadMessage()
				if err != nil {
					close(snaps)
					return
				}
				if m, err := wire.Decode(data); err == nil {
					if sn, ok := m.(*wire.Snapshot); ok {
						snaps <- sn
					}
				}
			}
		}()
		return ws, snaps
	}
	waitFor := func(snaps chan *wire.Snapshot, what string, cond func(*wire.Snapshot) bool) *wire.Snapshot {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case sn, ok := <-snaps:
				if !ok {
					t.Fatalf("stream closed waiting for %s", what)
				}
				if cond(sn) {
					return sn
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	dial(wire.Hello{ProxyID: "inventory-1", Service: "inventory", Version: "v1", Inbound: []string{"127.0.0.1:9001"}})
	v2, _ := dial(wire.Hello{ProxyID: "inventory-2", Service: "inventory", Version: "v2", Inbound: []string{"127.0.0.1:9002"}})
	web, webSnaps := dial(wire.Hello{ProxyID: "web-1", Service: "web", Version: "v1", Upstreams: []string{"inventory"}})
	waitFor(webSnaps, "two inventory endpoints", func(sn *wire.Snapshot) bool { return len(sn.Services["inventory"].Endpoints) == 2 })

	var res control.ResultView
	if code := post(t, s.url(control.APIPrefix+"/apply"), inventorySplit, &res); code != 200 {
		t.Fatalf("apply: %d", code)
	}
	sn := waitFor(webSnaps, "the split", func(sn *wire.Snapshot) bool { return sn.Version == res.Version })
	if p := sn.Services["inventory"].Policies; len(p) != 1 || p[0].Route().Rules[0].Backends[0].Weight != 90 {
		t.Errorf("pushed policies = %+v", p)
	}

	// web reports an ejection; the endpoint listing says who and why.
	st, _ := wire.Encode(&wire.Status{ConfigVersion: res.Version, Endpoints: []wire.EndpointStatus{{Service: "inventory", Address: "127.0.0.1:9002", Ejected: true, Reason: "5 consecutive 5xx"}}})
	if err := web.WriteMessage(websocket.TextMessage, st); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the ejection in /endpoints", func() (bool, string) {
		var v control.EndpointsView
		if err := getJSON(s.url(control.APIPrefix+"/endpoints?service=inventory"), &v); err != nil {
			return false, err.Error()
		}
		b, _ := json.Marshal(v.Endpoints)
		return len(v.Endpoints) == 2 && v.Endpoints[1].Ejected && v.Endpoints[1].EjectedBy[0].ProxyID == "web-1" &&
			v.Endpoints[1].EjectedBy[0].Reason == "5 consecutive 5xx" && v.Endpoints[1].Mode == policy.ModeEnforce, string(b)
	}, s.proc)

	// v2 disconnects and leaves after the grace period.
	v2.Close()
	waitFor(webSnaps, "v2 to leave", func(sn *wire.Snapshot) bool {
		e := sn.Services["inventory"].Endpoints
		return len(e) == 1 && e[0].Version == "v1"
	})
}

// TestControlPoliciesDir: the --policies directory is loaded at start,
// changes are applied on save, and its documents win over the API.
func TestControlPoliciesDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(file, []byte(inventorySplit), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startControlServer(t, t.TempDir(), "--policies", dir)
	if w := splitOf(t, s); w != "v1=90,v2=10" {
		t.Fatalf("loaded at start: %s", w)
	}
	if v := policies(t, s, ""); v.Sources["Route/inventory-split"] != "file:inventory.yaml" {
		t.Errorf("source = %q", v.Sources["Route/inventory-split"])
	}
	// The API cannot change a file's document.
	var e control.ErrorView
	if code := post(t, s.url(control.APIPrefix+"/apply"), inventorySplit, &e); code != 409 || !strings.Contains(e.Error, "file:inventory.yaml") {
		t.Errorf("API apply over a file: %d %q", code, e.Error)
	}
	// Saving the file applies it.
	changed := strings.Replace(strings.Replace(inventorySplit, "weight: 90", "weight: 70", 1), "weight: 10", "weight: 30", 1)
	os.WriteFile(file, []byte(changed), 0o644)
	poll(t, 30*time.Second, "the saved file applied", func() (bool, string) {
		w := splitOf(t, s)
		return w == "v1=70,v2=30", w
	}, s.proc)
	// A broken save keeps the last good content.
	os.WriteFile(file, []byte(changed+"bogus: 1\n"), 0o644)
	poll(t, 30*time.Second, "the error logged", func() (bool, string) {
		return strings.Contains(s.output(), "bogus: unknown field"), ""
	}, s.proc)
	if w := splitOf(t, s); w != "v1=70,v2=30" {
		t.Errorf("after a broken save: %s", w)
	}
	// Removing the file removes its documents.
	os.Remove(file)
	poll(t, 30*time.Second, "the document removed", func() (bool, string) {
		v := policies(t, s, "")
		return len(v.Policies) == 0, itoa(len(v.Policies))
	}, s.proc)
}

// TestControlCLI runs the policy commands of the real binary.
func TestControlCLI(t *testing.T) {
	s := startControlServer(t, t.TempDir())
	bin, _ := binaries(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(inventorySplit), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(paymentsRetries+"---\n"+paymentsOutliers), 0o644)
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--server", "http://"+s.http)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}

	code, out, errOut := cli("", "apply", "-f", dir)
	if code != 0 || !strings.Contains(out, `route "inventory-split" (service inventory): created`) || !strings.Contains(out, "version 1") {
		t.Fatalf("apply -f DIR: %d\n%s%s", code, out, errOut)
	}
	changed := strings.Replace(strings.Replace(inventorySplit, "weight: 90", "weight: 80", 1), "weight: 10", "weight: 20", 1)
	code, out, _ = cli(changed, "apply", "-f", "-", "--dry-run")
	if code != 0 || !strings.Contains(out, "would be updated") || !strings.Contains(out, "+         weight: 80") || !strings.Contains(out, "nothing applied (version stays 1)") {
		t.Errorf("apply --dry-run:\n%s", out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("kind: Route\nname: x\nservice: s\ntimeout: soon\n"), 0o644)
	code, _, errOut = cli("", "apply", "-f", bad)
	if code != 2 || !strings.Contains(errOut, "bad.yaml: document 1 (line 4): route \"x\": timeout: \"soon\" is not a duration") {
		t.Errorf("apply of a bad file: %d %s", code, errOut)
	}
	os.Remove(bad)

	code, out, _ = cli("", "get", "policies")
	if code != 0 || !strings.Contains(out, "inventory-split") || !strings.Contains(out, "v1 90%/v2 10%") || !strings.Contains(out, "version 1, 3 policies") {
		t.Errorf("get policies:\n%s", out)
	}
	// -o yaml gives documents that apply takes back unchanged.
	code, out, _ = cli("", "get", "policies", "-o", "yaml")
	if code != 0 {
		t.Fatalf("get -o yaml: %d", code)
	}
	code, again, _ := cli(out, "apply", "-f", "-")
	if code != 0 || !strings.Contains(again, "nothing changed (version 1)") {
		t.Errorf("re-applying get -o yaml:\n%s\n%s", out, again)
	}
	code, out, _ = cli("", "get", "policies", "-o", "json", "--kind", "resilience")
	var pv control.PoliciesView
	if code != 0 || json.Unmarshal([]byte(out), &pv) != nil || len(pv.Policies) != 1 || pv.Policies[0].Resilience().OutlierDetection.Consecutive5xx != 5 {
		t.Errorf("get -o json --kind resilience:\n%s", out)
	}
	code, out, _ = cli("", "delete", "route", "payments-retries")
	if code != 0 || !strings.Contains(out, "deleted") || !strings.Contains(out, "version 2") {
		t.Errorf("delete: %d %s", code, out)
	}
	code, _, errOut = cli("", "delete", "route", "nope")
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("delete of a missing policy: %d %s", code, errOut)
	}
	code, out, _ = cli("", "history")
	if code != 0 || !strings.Contains(out, "delete route/payments-retries") || !strings.Contains(out, "cli ") {
		t.Errorf("history:\n%s", out)
	}
	code, out, _ = cli("", "rollback", "1")
	if code != 0 || !strings.Contains(out, `route "payments-retries" (service payments): created`) || !strings.Contains(out, "version 3") {
		t.Errorf("rollback:\n%s", out)
	}
	code, out, _ = cli("", "get", "endpoints", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "policy_version: 3") {
		t.Errorf("get endpoints -o yaml:\n%s", out)
	}
	if code, _, errOut = cli("", "get", "things"); code != 2 || !strings.Contains(errOut, "want policies or endpoints") {
		t.Errorf("get things: %d %s", code, errOut)
	}
}
