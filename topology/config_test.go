package topology

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		key  string // "" = valid
	}{
		{"defaults", Config{}, ""},
		{"short window", Config{DefaultWindow: time.Millisecond}, "default_window"},
		{"max below default", Config{DefaultWindow: time.Hour, MaxWindow: time.Minute}, "max_window"},
		{"stream window", Config{StreamWindows: []time.Duration{8 * 24 * time.Hour}}, "stream_windows"},
		{"fast builds", Config{BuildInterval: time.Millisecond}, "build_interval"},
		{"degraded", Config{DegradedErrorRate: 2}, "degraded_error_rate"},
		{"failing below degraded", Config{DegradedErrorRate: 0.5, FailingErrorRate: 0.2}, "failing_error_rate"},
		{"origin", Config{AllowedOrigins: []string{"ops.example.com"}}, "allowed_origins"},
		{"buffer", Config{StreamBuffer: -1}, "stream_buffer"},
		{"pending", Config{PairingMaxPending: -5}, "pairing_max_pending"},
		{"expiry", Config{PairingExpiry: -time.Second}, "pairing_expiry"},
		{"aggregate interval", Config{AggregateInterval: time.Millisecond}, "aggregate_interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.key)
			}
		})
	}
}

func TestConfigYAMLStrict(t *testing.T) {
	src := "default_window: 5m\nstream_windows: [1m, 10m]\nallowed_origins: [\"https://ops.example.com\"]\ndegraded_error_rate: 0.01\nedge_aggregates: false\naggregate_interval: 2s\n"
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.DefaultWindow != 5*time.Minute || len(c.StreamWindows) != 2 || c.StreamWindows[1] != 10*time.Minute || c.DegradedErrorRate != 0.01 ||
		c.edgeAggregates() || c.AggregateInterval != 2*time.Second {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	dec = yaml.NewDecoder(strings.NewReader("default_windw: 1m\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err == nil || !strings.Contains(err.Error(), "default_windw") {
		t.Errorf("unknown key: %v", err)
	}
}
