package demo

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantKey string // "" = valid
	}{
		{"zero is valid", Config{}, ""},
		{"explicit", Config{HTTPAddr: "127.0.0.1:0", Rate: 5, Duration: time.Minute}, ""},
		{"negative rate disables load", Config{Rate: -1}, ""},
		{"bad address", Config{HTTPAddr: "7070"}, "http_addr"},
		{"rate too high", Config{Rate: 5000}, "rate"},
		{"negative duration", Config{Duration: -time.Second}, "duration"},
		{"negative ready timeout", Config{ReadyTimeout: -1}, "ready_timeout"},
		{"negative stop timeout", Config{StopTimeout: -1}, "stop_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantKey == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantKey != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantKey+" ")):
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.wantKey)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.HTTPAddr != "127.0.0.1:7070" || c.DataDir != "./data/demo" || c.Rate != 20 || c.Duration != 0 {
		t.Fatalf("defaults = %+v", c)
	}
	if c := (Config{Rate: 3}).WithDefaults(); c.Rate != 3 {
		t.Fatalf("explicit rate overwritten: %v", c.Rate)
	}
}
