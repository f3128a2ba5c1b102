package promapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// Status is what the status endpoints report about the running server
// (/api/v1/status/runtimeinfo, /flags, /config). The zero value is valid:
// no flags, an empty configuration, start time unknown.
type Status struct {
	// StartTime is when the server started.
	StartTime time.Time
	// Flags are the server's flags and their effective values.
	Flags map[string]string
	// ConfigYAML is the effective configuration, secrets redacted.
	ConfigYAML string
	// StorageRetention describes the TSDB's retention ("15d").
	StorageRetention string
}

// headSource is the TSDB behind the Queryable (*tsdb.DB and the server's
// metrics store, which embeds it); /api/v1/status/tsdb and /walreplay read
// its head.
type headSource interface {
	Head() *tsdb.Head
}

// dirSource gives the TSDB's directory (for the WAL segment range).
type dirSource interface {
	Dir() string
}

// RuntimeInfo is the data of /api/v1/status/runtimeinfo (Prometheus' shape).
type RuntimeInfo struct {
	StartTime           time.Time `json:"startTime"`
	CWD                 string    `json:"CWD"`
	Hostname            string    `json:"hostname"`
	ServerTime          time.Time `json:"serverTime"`
	ReloadConfigSuccess bool      `json:"reloadConfigSuccess"`
	LastConfigTime      time.Time `json:"lastConfigTime"`
	CorruptionCount     int64     `json:"corruptionCount"`
	GoroutineCount      int       `json:"goroutineCount"`
	GOMAXPROCS          int       `json:"GOMAXPROCS"`
	GOMEMLIMIT          int64     `json:"GOMEMLIMIT"`
	GOGC                string    `json:"GOGC"`
	GODEBUG             string    `json:"GODEBUG"`
	StorageRetention    string    `json:"storageRetention"`
}

// TSDBStat is one entry of the cardinality lists of /api/v1/status/tsdb.
type TSDBStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// HeadStats describes the TSDB head.
type HeadStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

// TSDBStatus is the data of /api/v1/status/tsdb.
type TSDBStatus struct {
	HeadStats                   HeadStats  `json:"headStats"`
	SeriesCountByMetricName     []TSDBStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []TSDBStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []TSDBStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []TSDBStat `json:"seriesCountByLabelValuePair"`
}

// WALReplayStatus is the data of /api/v1/status/walreplay.
type WALReplayStatus struct {
	Min     int `json:"min"`
	Max     int `json:"max"`
	Current int `json:"current"`
}

// TargetDiscovery is the data of /api/v1/targets. Meshscope receives
// metrics over OTLP and remote write and scrapes nothing, so the lists are
// always empty.
type TargetDiscovery struct {
	ActiveTargets       []any          `json:"activeTargets"`
	DroppedTargets      []any          `json:"droppedTargets"`
	DroppedTargetCounts map[string]int `json:"droppedTargetCounts"`
}

// AlertmanagerDiscovery is the data of /api/v1/alertmanagers.
type AlertmanagerDiscovery struct {
	ActiveAlertmanagers  []any `json:"activeAlertmanagers"`
	DroppedAlertmanagers []any `json:"droppedAlertmanagers"`
}

// ConfigData is the data of /api/v1/status/config.
type ConfigData struct {
	YAML string `json:"yaml"`
}

func (a *API) targets(*http.Request) apiResult {
	return apiResult{data: &TargetDiscovery{ActiveTargets: []any{}, DroppedTargets: []any{}, DroppedTargetCounts: map[string]int{}}}
}

func (a *API) targetMetadata(r *http.Request) apiResult {
	if s := r.FormValue("limit"); s != "" {
		if _, err := strconv.Atoi(s); err != nil {
			return badData(errors.New("limit must be a number"))
		}
	}
	if m := r.FormValue("match_target"); m != "" {
		if _, err := a.parser.ParseMetricSelector(m); err != nil {
			return invalidParam(err, "match_target")
		}
	}
	return apiResult{data: []any{}}
}

func (a *API) alertmanagers(*http.Request) apiResult {
	return apiResult{data: &AlertmanagerDiscovery{ActiveAlertmanagers: []any{}, DroppedAlertmanagers: []any{}}}
}

func (a *API) serveFlags(*http.Request) apiResult {
	flags := a.opts.Status.Flags
	if flags == nil {
		flags = map[string]string{}
	}
	return apiResult{data: flags}
}

func (a *API) serveConfig(*http.Request) apiResult {
	return apiResult{data: &ConfigData{YAML: a.opts.Status.ConfigYAML}}
}

func (a *API) serveRuntimeInfo(*http.Request) apiResult {
	info := RuntimeInfo{
		StartTime:           a.opts.Status.StartTime,
		ServerTime:          a.opts.Now().UTC(),
		ReloadConfigSuccess: true,
		LastConfigTime:      a.opts.Status.StartTime,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOMEMLIMIT:          debug.SetMemoryLimit(-1),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
		StorageRetention:    a.opts.Status.StorageRetention,
	}
	var err error
	if info.CWD, err = os.Getwd(); err != nil {
		info.CWD = err.Error()
	}
	if info.Hostname, err = os.Hostname(); err != nil {
		info.Hostname = err.Error()
	}
	return apiResult{data: info}
}

// maxTSDBLimit is Prometheus' bound on /api/v1/status/tsdb?limit.
const maxTSDBLimit = 10000

func (a *API) serveTSDBStatus(r *http.Request) apiResult {
	limit := 10
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return badData(errors.New("limit must be a positive number"))
		}
		if limit > maxTSDBLimit {
			return badData(fmt.Errorf("limit must not exceed %d", maxTSDBLimit))
		}
	}
	hs, ok := a.queryable.(headSource)
	if !ok {
		return apiResult{err: &apiError{ErrUnavailable, errors.New("the metrics storage has no TSDB head to report on")}}
	}
	head := hs.Head()
	s := head.Stats(labels.MetricName, limit)
	chunkCount, err := headChunkCount(r.Context(), head)
	if err != nil {
		return apiResult{err: &apiError{ErrInternal, fmt.Errorf("counting head chunks: %w", err)}}
	}
	return apiResult{data: &TSDBStatus{
		HeadStats: HeadStats{
			NumSeries:     s.NumSeries,
			NumLabelPairs: s.IndexPostingStats.NumLabelPairs,
			ChunkCount:    chunkCount,
			MinTime:       s.MinTime,
			MaxTime:       s.MaxTime,
		},
		SeriesCountByMetricName:     tsdbStats(s.IndexPostingStats.CardinalityMetricsStats),
		LabelValueCountByLabelName:  tsdbStats(s.IndexPostingStats.CardinalityLabelStats),
		MemoryInBytesByLabelName:    tsdbStats(s.IndexPostingStats.LabelValueStats),
		SeriesCountByLabelValuePair: tsdbStats(s.IndexPostingStats.LabelValuePairsStats),
	}}
}

// tsdbStats converts the head's top-N lists, largest first and equal
// counts by name (the head leaves the order of ties open).
func tsdbStats(in []index.Stat) []TSDBStat {
	out := make([]TSDBStat, 0, len(in))
	for _, s := range in {
		out = append(out, TSDBStat{Name: s.Name, Value: s.Count})
	}
	slices.SortStableFunc(out, func(a, b TSDBStat) int {
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// headChunkCount counts the chunks of every head series (what Prometheus
// reads from its prometheus_tsdb_head_chunks gauge).
func headChunkCount(ctx context.Context, head *tsdb.Head) (int64, error) {
	ir, err := head.Index()
	if err != nil {
		return 0, err
	}
	defer ir.Close()
	name, value := index.AllPostingsKey()
	p, err := ir.Postings(ctx, name, value)
	if err != nil {
		return 0, err
	}
	var (
		n    int64
		b    labels.ScratchBuilder
		chks []chunks.Meta
	)
	for i := 0; p.Next(); i++ {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		chks = chks[:0]
		if err := ir.Series(p.At(), &b, &chks); err != nil {
			continue // the series was garbage-collected meanwhile
		}
		n += int64(len(chks))
	}
	return n, p.Err()
}

// serveWALReplay reports the WAL replay as Prometheus does. The TSDB is
// opened (and its WAL replayed) before the API serves, so the replay is
// complete: current = max = the last segment of the WAL.
func (a *API) serveWALReplay(*http.Request) apiResult {
	ds, ok := a.queryable.(dirSource)
	if !ok {
		return apiResult{data: WALReplayStatus{}}
	}
	first, last, err := wlog.Segments(filepath.Join(ds.Dir(), "wal"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return apiResult{data: WALReplayStatus{}}
		}
		return apiResult{err: &apiError{ErrInternal, fmt.Errorf("reading the WAL segments: %w", err)}}
	}
	if first < 0 {
		return apiResult{data: WALReplayStatus{}}
	}
	return apiResult{data: WALReplayStatus{Min: first, Max: last, Current: last}}
}
