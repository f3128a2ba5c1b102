package query_test

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/query"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/meshapi"
	"github.com/meshscope/meshscope/query/red"
)

// documentedQuery is one ```promql block of docs/metrics.md's
// recording-rule section: its record name, the API field it gives, and
// the expression.
type documentedQuery struct {
	record, field, expr string
}

var promqlBlock = regexp.MustCompile("(?s)```promql\n(.*?)```")

func documentedQueries(t *testing.T) []documentedQuery {
	t.Helper()
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []documentedQuery
	for _, m := range promqlBlock.FindAllStringSubmatch(string(b), -1) {
		var q documentedQuery
		var expr []string
		for _, line := range strings.Split(m[1], "\n") {
			switch {
			case strings.HasPrefix(line, "# record: "):
				q.record = strings.TrimPrefix(line, "# record: ")
			case strings.HasPrefix(line, "# api: "):
				q.field = strings.TrimPrefix(line, "# api: ")
			default:
				expr = append(expr, line)
			}
		}
		if q.record == "" {
			continue
		}
		q.expr = strings.TrimSpace(strings.Join(expr, "\n"))
		out = append(out, q)
	}
	return out
}

// TestDocumentedQueries evaluates the recording-rule queries of
// docs/metrics.md with the real PromQL engine over the fixture TSDB and
// checks that each gives, per service, the figure GET /api/mesh/services
// shows (to its 6 printed decimals), so the documented queries count every
// request once, as the API does.
func TestDocumentedQueries(t *testing.T) {
	qs := documentedQueries(t)
	fields := map[string]bool{}
	for _, q := range qs {
		fields[q.field] = true
	}
	for _, f := range []string{"rps", "error_rate", "p99_ms"} {
		if !fields[f] {
			t.Errorf("docs/metrics.md has no recording-rule query for %s", f)
		}
	}
	db := fixture.TSDB(t)
	api, err := query.New(query.DefaultConfig(), fixture.Engine(), db, nil, fixture.RED(t, db), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var services meshapi.ServicesResponse
	getJSON(t, srv.URL+"/api/mesh/services?window=1m&at="+fixture.Now.Format("2006-01-02T15:04:05Z"), &services)
	rows := map[string]meshapi.ServiceRow{}
	for _, r := range services.Services {
		rows[r.Service] = r
	}
	src := red.Source{Engine: fixture.Engine(), Queryable: db}
	for _, q := range qs {
		v, err := src.Instant(context.Background(), q.expr, fixture.Now)
		if err != nil {
			t.Errorf("%s: %v", q.record, err)
			continue
		}
		if len(v) == 0 {
			t.Errorf("%s: no result", q.record)
		}
		seen := map[string]bool{}
		for _, smp := range v {
			svc := smp.Metric.Get("destination_service")
			if seen[svc] {
				t.Errorf("%s: %s twice", q.record, svc)
			}
			seen[svc] = true
			row, ok := rows[svc]
			if !ok {
				t.Errorf("%s: %s is not in the services table", q.record, svc)
				continue
			}
			var api, got float64
			switch q.field {
			case "rps":
				api, got = float64(row.RPS), smp.F
			case "error_rate":
				api, got = float64(row.ErrorRate), smp.F
			case "p99_ms":
				api, got = float64(row.P99Ms), smp.F*1000
			default:
				t.Fatalf("%s: unknown api field %q", q.record, q.field)
			}
			if r6(got) != api || math.IsNaN(api) {
				t.Errorf("%s{destination_service=%q} = %v, API %s %v", q.record, svc, got, q.field, api)
			}
		}
		for svc, row := range rows {
			if !seen[svc] && float64(row.RPS) > 0 {
				t.Errorf("%s: no value for %s (API rps %v)", q.record, svc, float64(row.RPS))
			}
		}
	}
}
