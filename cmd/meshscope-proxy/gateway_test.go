package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseGateway(t *testing.T) {
	if !isGateway([]string{"--service", "edge", "--gateway"}) || isGateway([]string{"--service", "edge"}) {
		t.Fatal("isGateway")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gateway", "--service", "edge"}, "needs --config FILE"},
		{[]string{"--gateway", "--service", "edge", "--config", "g.yaml", "--opaque", "127.0.0.1:1"}, "--opaque does not apply"},
		{[]string{"--gateway", "--service", "edge", "--config", "g.yaml", "extra"}, `unexpected argument "extra"`},
	} {
		if _, _, err := parseGateway(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	cfg, file, err := parseGateway([]string{"--gateway", "--service", "edge", "--config", "g.yaml", "--admin", "127.0.0.1:0"}, io.Discard)
	if err != nil || file != "g.yaml" || cfg.Service != "edge" || cfg.Admin != "127.0.0.1:0" {
		t.Fatalf("%+v %q %v", cfg, file, err)
	}
}
