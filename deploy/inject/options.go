package inject

import (
	"errors"
	"fmt"
	"net"
	"net/url"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Proxy modes (the proxy's --mode).
const (
	ModeObserve = "observe"
	ModeEnforce = "enforce"
)

// Options are what every injected sidecar shares; per-workload settings
// come from the pod template's annotations (see Annotation*).
type Options struct {
	// Image is the meshscope-proxy image.
	Image string
	// ControlPlane is the proxies' --control-plane URL (the
	// meshscope-control Service); empty = no control plane (no discovery,
	// no policies, no mTLS).
	ControlPlane string
	// Collector is the proxies' --collector, OTLP gRPC host:port (the
	// meshscope-otlp Service); empty = no telemetry export.
	Collector string
	// TokenSecret names the Secret (key "token") holding the proxy-role
	// bearer token, in the workload's namespace; empty = no token (a
	// server without --auth-file).
	TokenSecret string
	// Mode is observe (default: record, change nothing) or enforce.
	Mode string
}

// DefaultOptions match deploy/kubernetes: the server in namespace
// meshscope.
func DefaultOptions() Options {
	return Options{
		Image:        "meshscope/meshscope-proxy:latest",
		ControlPlane: "http://meshscope-control.meshscope.svc:7070",
		Collector:    "meshscope-otlp.meshscope.svc:4317",
		TokenSecret:  "meshscope-proxy-token",
		Mode:         ModeObserve,
	}
}

// Validate names the first bad option by its flag.
func (o Options) Validate() error {
	if o.Image == "" {
		return errors.New("--proxy-image: must be set")
	}
	if o.ControlPlane != "" {
		u, err := url.Parse(o.ControlPlane)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--control-plane %q: want http://host:port or https://host:port", o.ControlPlane)
		}
	}
	if o.Collector != "" {
		if _, port, err := net.SplitHostPort(o.Collector); err != nil || port == "" {
			return fmt.Errorf("--collector %q: want host:port", o.Collector)
		}
	}
	if o.TokenSecret != "" {
		if errs := validation.IsDNS1123Subdomain(o.TokenSecret); len(errs) > 0 {
			return fmt.Errorf("--token-secret %q: not a Secret name: %s", o.TokenSecret, errs[0])
		}
	}
	if err := checkMode(o.Mode); err != nil {
		return fmt.Errorf("--mode %w", err)
	}
	return nil
}

func checkMode(m string) error {
	if m != ModeObserve && m != ModeEnforce {
		return fmt.Errorf("%q: want %s or %s", m, ModeObserve, ModeEnforce)
	}
	return nil
}
