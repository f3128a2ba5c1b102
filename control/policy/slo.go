package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// SLO is the spec of kind SLO: a service-level objective over the mesh's
// golden metrics (or custom PromQL), from which the server generates
// recording rules and multiwindow multi-burn-rate alerts (docs/slo.md).
//
// Sloth: service level; Pyrra: ServiceLevelObjective; OpenSLO: SLO.
type SLO struct {
	// Route narrows the SLO to one declared route template of the service
	// (the route label, e.g. /api/pay). Default: every route.
	Route string `yaml:"route,omitempty" json:"route,omitempty"`
	// Objective is the target share of good requests in percent, e.g.
	// 99.9; required, above 0 and below 100.
	Objective float64 `yaml:"objective" json:"objective"`
	// Window is the SLO period, a Prometheus duration (30d, 7d, 1d, 12h).
	// Default 30d.
	Window Window `yaml:"window" json:"window"`
	// Indicator says what a good request is.
	Indicator Indicator `yaml:"indicator" json:"indicator"`
	// Alerting configures the generated burn-rate alerts.
	Alerting Alerting `yaml:"alerting" json:"alerting"`
}

// Indicator types.
const (
	IndicatorAvailability = "availability"
	IndicatorLatency      = "latency"
	IndicatorCustom       = "custom"
)

// WindowPlaceholder stands for the rate window in custom queries.
const WindowPlaceholder = "{{.window}}"

// Indicator is the service-level indicator.
type Indicator struct {
	// Type is availability (requests that did not fail over all requests,
	// from mesh_requests_total), latency (requests faster than Threshold
	// over all, from mesh_request_duration_seconds) or custom.
	// Default availability.
	Type string `yaml:"type" json:"type" default:"availability"`
	// Threshold is the latency a good request stays within (latency
	// only); it must be a bucket bound of mesh_request_duration_seconds.
	Threshold Duration `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	// GoodQuery and TotalQuery are PromQL expressions returning the rate of
	// good and of all events (custom only); {{.window}} stands for the
	// rate window: sum(rate(http_requests_total{code!~"5.."}[{{.window}}])).
	GoodQuery  string `yaml:"good_query,omitempty" json:"good_query,omitempty"`
	TotalQuery string `yaml:"total_query,omitempty" json:"total_query,omitempty"`
}

// Alerting configures the generated alerts.
type Alerting struct {
	// Page enables the page alert (14.4x over 1h/5m, 6x over 6h/30m for a
	// 30d window). Default true.
	Page *bool `yaml:"page" json:"page"`
	// Ticket enables the ticket alert (3x over 1d/2h, 1x over 3d/6h for
	// a 30d window). Default true.
	Ticket *bool `yaml:"ticket" json:"ticket"`
	// Labels are added to the generated alerts. Default none.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// Annotations are added to the generated alerts. Default none.
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// PageEnabled reports whether the page alert is generated.
func (a Alerting) PageEnabled() bool { return a.Page == nil || *a.Page }

// TicketEnabled reports whether the ticket alert is generated.
func (a Alerting) TicketEnabled() bool { return a.Ticket == nil || *a.Ticket }

// DefaultSLOWindow is the SLO window when none is given.
const DefaultSLOWindow = Window(30 * 24 * time.Hour)

// LatencyBuckets are the bucket bounds of mesh_request_duration_seconds
// (docs/metrics.md); a latency threshold must be one of them.
var LatencyBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// labelNameRE is the syntax of alert label names.
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are set by the generated rules and cannot be overridden.
var reservedLabels = []string{"alertname", "slo", "service", "route", "severity", "long_window", "short_window"}

func (s *SLO) setDefaults() {
	if s.Window == 0 {
		s.Window = DefaultSLOWindow
	}
	if s.Indicator.Type == "" {
		s.Indicator.Type = IndicatorAvailability
	}
	t := true
	if s.Alerting.Page == nil {
		s.Alerting.Page = &t
	}
	if s.Alerting.Ticket == nil {
		s.Alerting.Ticket = &t
	}
}

// Validate checks the spec.
func (s *SLO) Validate() error {
	switch {
	case math.IsNaN(s.Objective) || s.Objective <= 0 || s.Objective >= 100:
		return fieldErr("objective", "%v: want a percent above 0 and below 100, e.g. 99.9", s.Objective)
	case s.Window < Window(time.Hour):
		return fieldErr("window", "%v: must be at least 1h", s.Window)
	case s.Route != "" && !strings.HasPrefix(s.Route, "/"):
		return fieldErr("route", "%q: want a declared route template starting with /", s.Route)
	}
	ind := s.Indicator
	switch ind.Type {
	case IndicatorAvailability:
		if ind.Threshold != 0 || ind.GoodQuery != "" || ind.TotalQuery != "" {
			return fieldErr("indicator", "availability takes no threshold, good_query or total_query")
		}
	case IndicatorLatency:
		if ind.Threshold <= 0 {
			return fieldErr("indicator.threshold", "must be set for a latency indicator (e.g. 250ms)")
		}
		if !slices.Contains(LatencyBuckets[:], ind.Threshold.D().Seconds()) {
			return fieldErr("indicator.threshold", "%v is not a bucket bound of mesh_request_duration_seconds (want one of %s)", ind.Threshold, bucketList())
		}
		if ind.GoodQuery != "" || ind.TotalQuery != "" {
			return fieldErr("indicator", "latency takes no good_query or total_query")
		}
	case IndicatorCustom:
		if ind.Threshold != 0 {
			return fieldErr("indicator.threshold", "only for a latency indicator")
		}
		if s.Route != "" {
			return fieldErr("route", "not used by a custom indicator (put it in the queries)")
		}
		for _, q := range []struct{ name, v string }{{"good_query", ind.GoodQuery}, {"total_query", ind.TotalQuery}} {
			if strings.TrimSpace(q.v) == "" {
				return fieldErr("indicator."+q.name, "must be set for a custom indicator")
			}
			if !strings.Contains(q.v, WindowPlaceholder) {
				return fieldErr("indicator."+q.name, "must contain %s where the rate window goes, e.g. rate(x[%s])", WindowPlaceholder, WindowPlaceholder)
			}
		}
	default:
		return fieldErr("indicator.type", "%q: want availability, latency or custom", ind.Type)
	}
	for k := range s.Alerting.Labels {
		if !labelNameRE.MatchString(k) {
			return fieldErr("alerting.labels."+k, "is not a label name")
		}
		if slices.Contains(reservedLabels, k) {
			return fieldErr("alerting.labels."+k, "is set by the generated rules")
		}
	}
	for k := range s.Alerting.Annotations {
		if !labelNameRE.MatchString(k) {
			return fieldErr("alerting.annotations."+k, "is not an annotation name")
		}
	}
	return nil
}

func bucketList() string {
	parts := make([]string, len(LatencyBuckets))
	for i, b := range LatencyBuckets {
		parts[i] = time.Duration(b * float64(time.Second)).String()
	}
	return strings.Join(parts, ", ")
}

// Window is a duration written as a Prometheus duration (30d, 1w, 12h).
type Window time.Duration

// D returns w as a time.Duration.
func (w Window) D() time.Duration { return time.Duration(w) }

func (w Window) String() string { return model.Duration(w).String() }

func parseWindow(s string) (Window, error) {
	v, err := model.ParseDuration(s)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not a window (want e.g. 30d, 7d, 1d, 12h)", s)
	}
	return Window(v), nil
}

// MarshalJSON implements json.Marshaler.
func (w Window) MarshalJSON() ([]byte, error) { return json.Marshal(w.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (w *Window) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("window: want a string such as \"30d\": %w", err)
	}
	v, err := parseWindow(s)
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (w Window) MarshalYAML() (any, error) { return w.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (w *Window) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a window such as 30d", n.Line)
	}
	v, err := parseWindow(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*w = v
	return nil
}
