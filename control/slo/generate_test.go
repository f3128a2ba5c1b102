package slo

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/meshscope/meshscope/control/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// goldenInterval is the evaluation interval of the golden files.
const goldenInterval = 15 * time.Second

func loadDocs(t *testing.T) []policy.Document {
	t.Helper()
	b, err := os.ReadFile("testdata/slos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := policy.Load(b)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestRulesGolden compares the rule file of each SLO in testdata/slos.yaml
// with testdata/<name>.rules.yaml and checks that Prometheus' own rule
// parser accepts it.
func TestRulesGolden(t *testing.T) {
	for _, d := range loadDocs(t) {
		t.Run(d.Name, func(t *testing.T) {
			gs, err := Rules(&d, Options{EvalInterval: goldenInterval, ExternalURL: "http://meshscope.example:7070/"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := RuleFile(gs)
			if err != nil {
				t.Fatal(err)
			}
			if _, errs := rulefmt.Parse(got, false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil); len(errs) > 0 {
				t.Fatalf("rulefmt rejects the generated rules: %v\n%s", errs, got)
			}
			path := filepath.Join("testdata", d.Name+".rules.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("generated rules differ from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestWindows(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		window, eval time.Duration
		want         []string // long/short per row
	}{
		{30 * day, 15 * time.Second, []string{"1h/5m", "6h/30m", "1d/2h", "3d/6h"}},
		{1 * day, time.Second, []string{"2m/10s", "12m/1m", "48m/4m", "2h24m/12m"}},
		{1 * day, 15 * time.Second, []string{"2m/1m", "12m/1m", "48m/4m", "2h24m/12m"}},
		{7 * day, 15 * time.Second, []string{"14m/1m10s", "1h24m/7m", "5h36m/28m", "16h48m/1h24m"}},
		{time.Hour, 30 * time.Second, []string{"2m/2m", "2m/2m", "2m/2m", "6m/2m"}},
	} {
		bws := Windows(tc.window, tc.eval)
		var got []string
		for _, w := range bws {
			got = append(got, PromDuration(w.Long)+"/"+PromDuration(w.Short))
			if w.Short < MinWindowEvals*tc.eval || w.Long < MinWindowEvals*tc.eval {
				t.Errorf("window %v eval %v: %v/%v is shorter than %d evaluations", tc.window, tc.eval, w.Long, w.Short, MinWindowEvals)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("Windows(%v, %v) = %v, want %v", tc.window, tc.eval, got, tc.want)
		}
		if tc.window == 30*day {
			want := []float64{2, 5, 10, 10}
			for i, w := range bws {
				if w.BudgetPercent != want[i] {
					t.Errorf("30d row %d spends %v%% of the budget, want %v%% (workbook)", i, w.BudgetPercent, want[i])
				}
			}
		}
	}
}

func TestBudget(t *testing.T) {
	for obj, want := range map[float64]float64{99.9: 0.001, 99.5: 0.005, 99: 0.01, 95: 0.05, 99.99: 0.0001} {
		if got := Budget(obj); got != want {
			t.Errorf("Budget(%v) = %v, want %v", obj, got, want)
		}
	}
}

// TestRulesBadCustomQuery: a custom query that is not PromQL is refused
// with the SLO and the field named.
func TestRulesBadCustomQuery(t *testing.T) {
	docs, err := policy.Load([]byte("kind: SLO\nname: x\nservice: s\nobjective: 99\nindicator:\n  type: custom\n  good_query: rate(x[{{.window}}]\n  total_query: rate(y[{{.window}}])\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Rules(&docs[0], Options{EvalInterval: time.Second})
	if err == nil || !strings.Contains(err.Error(), `slo "x": indicator`) {
		t.Fatalf("err = %v, want one naming slo \"x\" and the indicator", err)
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus); make test installs it")
	}
	return p
}

// TestPromtoolCheckRules runs `promtool check rules` on every golden file.
func TestPromtoolCheckRules(t *testing.T) {
	bin := promtool(t)
	files, _ := filepath.Glob("testdata/*.rules.yaml")
	if len(files) == 0 {
		t.Fatal("no golden rule files")
	}
	out, err := exec.Command(bin, append([]string{"check", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestPromtoolTestRules runs the promtool unit tests of the generated rules
// (testdata/*.test.yaml load the golden rule files, which TestRulesGolden
// keeps equal to what the generator writes).
func TestPromtoolTestRules(t *testing.T) {
	bin := promtool(t)
	files, _ := filepath.Glob("testdata/*.test.yaml")
	if len(files) == 0 {
		t.Fatal("no promtool unit tests")
	}
	cmd := exec.Command(bin, append([]string{"test", "rules"}, filepath.Base(files[0]))...)
	for _, f := range files[1:] {
		cmd.Args = append(cmd.Args, filepath.Base(f))
	}
	cmd.Dir = "testdata"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
