package main

import (
	"bytes"
	"testing"

	"github.com/meshscope/meshscope/topology"
)

// The graph stream caps have flags, documented defaults and a config key.
func TestServerStreamCapFlags(t *testing.T) {
	var errb bytes.Buffer
	cfg, err := parseServerConfig(nil, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Topology.StreamMaxClients != topology.DefaultStreamMaxClients || cfg.Topology.StreamMaxClientsPerAddress != topology.DefaultStreamMaxClientsPerAddress {
		t.Fatalf("defaults %d/%d", cfg.Topology.StreamMaxClients, cfg.Topology.StreamMaxClientsPerAddress)
	}
	cfg, err = parseServerConfig([]string{"--stream-max-clients", "40", "--stream-max-clients-per-address", "4"}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Topology.StreamMaxClients != 40 || cfg.Topology.StreamMaxClientsPerAddress != 4 {
		t.Fatalf("flags gave %d/%d, want 40/4", cfg.Topology.StreamMaxClients, cfg.Topology.StreamMaxClientsPerAddress)
	}
	if _, err := parseServerConfig([]string{"--stream-max-clients", "-1"}, &errb); err == nil {
		t.Fatal("a negative cap was accepted")
	}
}
