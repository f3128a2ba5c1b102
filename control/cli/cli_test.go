package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshscope/meshscope/control/policy"
)

func TestSummary(t *testing.T) {
	docs, err := policy.Load([]byte(`kind: Route
name: r
service: s
rules:
  - match: {method: GET, path_prefix: /api, headers: [{name: x-canary, exact: "1"}]}
    backends: [{version: v2, weight: 100}]
  - backends: [{version: v1, weight: 80}, {version: v2, weight: 20}]
timeout: 2s
retries: {attempts: 3}
mirror: {version: v3, percent: 5}
fault: {abort: {percent: 1.5}}
---
kind: Resilience
name: x
service: s
load_balancer: round-robin
outlier_detection: {}
rate_limit: {requests_per_second: 50}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{
		"rule 1: GET /api* x-canary=1 → v2 100%; rule 2: v1 80%/v2 20%; timeout 2s; retries 3 on gateway-error,connect-failure,reset; mirror 5% to v3; abort 1.5% with 503",
		"round-robin; eject after 5×5xx for 30s; rate 50/s burst 50",
	} {
		if got := Summary(&docs[i]); got != want {
			t.Errorf("Summary(%s)\n got %s\nwant %s", docs[i].Name, got, want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ok.yaml"), []byte("kind: Route\nname: r\nservice: s\ntimeout: 1s\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "z.yaml"), []byte("kind: Route\nname: q\nservice: s\nmirror: {percent: 5}\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apply"}, "-f FILE|DIR|- is required"},
		{[]string{"apply", "-f", dir}, `z.yaml: document 1 (line 4): route "q": mirror.version: must be set`},
		{[]string{"apply", "-f", filepath.Join(dir, "none")}, "no such file"},
		{[]string{"get"}, "want one of: policies, endpoints"},
		{[]string{"get", "policies", "-o", "xml"}, `-o "xml": want one of table, yaml, json`},
		{[]string{"get", "endpoints", "--kind", "route"}, "--kind applies to policies only"},
		{[]string{"delete", "route"}, "want KIND NAME"},
		{[]string{"rollback", "latest"}, `VERSION "latest": want a number`},
		{[]string{"history", "--limit", "-1"}, "must not be negative"},
	} {
		var out, errb bytes.Buffer
		code := Run(context.Background(), tc.args[0], tc.args[1:], &out, &errb)
		if code != ExitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb.String(), ExitUsage, tc.want)
		}
	}
	// Flags may follow positional arguments.
	var out, errb bytes.Buffer
	code := Run(context.Background(), "delete", []string{"route", "r", "--server", "http://127.0.0.1:1", "--timeout", "1s"}, &out, &errb)
	if code != ExitFailure || !strings.Contains(errb.String(), "server at http://127.0.0.1:1") {
		t.Errorf("delete against a closed port: exit %d, %q", code, errb.String())
	}
}
