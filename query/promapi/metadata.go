package promapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
)

// Metadata is one entry of /api/v1/metadata.
type Metadata struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// knownMetadata describes the golden metrics (docs/metrics.md); every other
// metric's type is inferred from its name.
var knownMetadata = map[string]Metadata{
	"mesh_requests_total":           {Type: "counter", Help: "Requests seen by a proxy, by direction, source, destination, route, status and outcome."},
	"mesh_request_duration_seconds": {Type: "histogram", Help: "Request latency seen by a proxy, from the first request byte to the last response byte.", Unit: "seconds"},
	"mesh_request_bytes_total":      {Type: "counter", Help: "Request body bytes seen by a proxy.", Unit: "bytes"},
	"mesh_response_bytes_total":     {Type: "counter", Help: "Response body bytes seen by a proxy.", Unit: "bytes"},
	"mesh_tcp_connections_total":    {Type: "counter", Help: "TCP connections opened through a proxy."},
	"mesh_tcp_open_connections":     {Type: "gauge", Help: "TCP connections currently open through a proxy."},
	"mesh_tcp_bytes_total":          {Type: "counter", Help: "TCP bytes relayed by a proxy, by flow.", Unit: "bytes"},
	"meshscope_proxy_info":          {Type: "gauge", Help: "Always 1; names a proxy's service, version and mode."},
}

// metadataSource is a storage that records the metadata its senders sent
// (the metric store: OTLP type/unit/description, remote write metadata).
type metadataSource interface {
	MetricMetadata() map[string]metadata.Metadata
}

// metadata answers /api/v1/metadata. Meshscope ingests rather than scrapes,
// so the metadata is what OTLP and remote write carried, recorded by the
// storage per metric family. Metric names present in the TSDB without such
// metadata are still listed: the golden metrics with their documented help
// texts, the rest with a type inferred from the name (`_total` → counter;
// `_bucket`+`_count`+`_sum` → histogram under the family name;
// `x`+`x_count`+`x_sum` → summary `x`; anything else → gauge).
func (a *API) metadata(r *http.Request) apiResult {
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil {
			return badData(errors.New("limit must be a number"))
		}
	}
	if s := r.FormValue("limit_per_metric"); s != "" {
		if _, err := strconv.Atoi(s); err != nil {
			return badData(errors.New("limit_per_metric must be a number"))
		}
	}
	names, warnings, err := a.values(r.Context(), labels.MetricName, timeRange{start: MinTime, end: MaxTime})
	if err != nil {
		return apiResult{err: &apiError{ErrExec, err}, warnings: warnings}
	}
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	families := map[string]Metadata{}
	if src, ok := a.queryable.(metadataSource); ok {
		for name, md := range src.MetricMetadata() {
			families[name] = Metadata{Type: string(md.Type), Help: md.Help, Unit: md.Unit}
		}
	}
	sent := setOf(families)
	for _, n := range names {
		if _, ok := sent[n]; ok {
			continue
		}
		if base, ok := cutHistogramSuffix(n); ok {
			if _, ok := sent[base]; ok {
				continue
			}
		}
		name, md := familyOf(n, present)
		if _, ok := families[name]; !ok {
			families[name] = md
		}
	}
	metric := r.FormValue("metric")
	res := map[string][]Metadata{}
	for _, name := range sortedKeys(setOf(families)) {
		if metric != "" && name != metric {
			continue
		}
		if limit >= 0 && len(res) >= limit {
			break
		}
		res[name] = []Metadata{families[name]}
	}
	return apiResult{data: res}
}

// cutHistogramSuffix strips the suffix of a classic histogram's or a
// summary's series.
func cutHistogramSuffix(name string) (string, bool) {
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			return base, true
		}
	}
	return name, false
}

func setOf(m map[string]Metadata) map[string]struct{} {
	s := make(map[string]struct{}, len(m))
	for k := range m {
		s[k] = struct{}{}
	}
	return s
}

func familyOf(name string, present map[string]bool) (string, Metadata) {
	if md, ok := knownMetadata[name]; ok {
		return name, md
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		base, ok := strings.CutSuffix(name, suffix)
		if ok && present[base+"_bucket"] && present[base+"_count"] && present[base+"_sum"] {
			if md, ok := knownMetadata[base]; ok {
				return base, md
			}
			return base, Metadata{Type: "histogram", Unit: unitOf(base)}
		}
	}
	// Summaries: name{quantile=...}, name_count and name_sum.
	if present[name+"_count"] && present[name+"_sum"] {
		return name, Metadata{Type: "summary", Unit: unitOf(name)}
	}
	for _, suffix := range []string{"_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && present[base] && present[base+"_count"] && present[base+"_sum"] {
			return base, Metadata{Type: "summary", Unit: unitOf(base)}
		}
	}
	if strings.HasSuffix(name, "_total") {
		return name, Metadata{Type: "counter", Unit: unitOf(strings.TrimSuffix(name, "_total"))}
	}
	if strings.HasSuffix(name, "_info") {
		return name, Metadata{Type: "gauge"}
	}
	return name, Metadata{Type: "gauge", Unit: unitOf(name)}
}

func unitOf(name string) string {
	for _, u := range []string{"seconds", "bytes", "ratio"} {
		if strings.HasSuffix(name, "_"+u) {
			return u
		}
	}
	return ""
}
