package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{1234.5, "1235"},
		{100, "100"},
		{99.94, "99.9"},
		{12.345, "12.3"},
		{1.5, "1.5"},
		{0.35, "0.35"},
		{0.012345, "0.0123"},
		{-0.5, "-0.5"},
	}
	for _, tt := range tests {
		if got := Num(tt.in); got != tt.want {
			t.Errorf("Num(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCPUModelAndMemTotal(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n", "AMD EPYC 7B13"},
		{"arm", "processor\t: 0\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4\n", "BCM2835"},
		{"none", "processor: 0\n", ""},
	}
	for _, tt := range tests {
		if got := cpuModel([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: cpuModel = %q, want %q", tt.name, got, tt.want)
		}
	}
	if got := memTotal([]byte("MemTotal:       24684096 kB\nMemFree: 1 kB\n")); got != 24684096*1024 {
		t.Errorf("memTotal = %d", got)
	}
	if got := memTotal([]byte("MemTotal: x kB\n")); got != 0 {
		t.Errorf("memTotal of garbage = %d, want 0", got)
	}
}

func sample(quick bool) *Result {
	r := &Result{
		Part:            "proxy",
		Title:           "Proxy data plane",
		Command:         "make bench WHAT=proxy",
		Invocation:      "go run ./bench/proxy -quick",
		Quick:           quick,
		Start:           time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		DurationSeconds: 42,
		Machine: Machine{CPUModel: "AMD EPYC", Cores: 2, GoVersion: "go1.26.8", OS: "linux/amd64",
			Kernel: "6.1.0", MemoryBytes: 24 << 30, LoadAverage: "0.61 0.55 0.29"},
	}
	tab := r.AddTable("Latency at 1000 rps", "target", "p50 (ms)", "p99 (ms)")
	tab.AddRow("direct", "0.1", "0.3")
	tab.AddRow("a|b", "0.2", "0.5")
	tab.Note("Latency is measured from each request's intended send time.")
	r.AtMost("added p50 at 1000 rps", 0.35, 0.1, "ms")
	r.AtLeast("closed-loop throughput vs direct", 0.45, 0.3, "×").Note = "machine shared"
	r.AtMost("added p99", 0.5, -3, "ms").Inconclusive = true
	r.Note("The machine was shared; numbers are noisy.")
	return r
}

func TestTargets(t *testing.T) {
	r := sample(false)
	if !r.Targets[0].Met || r.Targets[0].Target != "≤ 0.35 ms" || r.Targets[0].Measured != "0.1 ms" {
		t.Errorf("AtMost target = %+v", r.Targets[0])
	}
	if r.Targets[1].Met || r.Targets[1].Target != "≥ 0.45×" {
		t.Errorf("AtLeast target = %+v", r.Targets[1])
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	full, quick := sample(false), sample(true)
	quick.Notes = []string{"quick"}
	for _, r := range []*Result{full, quick} {
		if _, err := Write(filepath.Join(dir, FileName(r.Part, r.Quick)), r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(filepath.Join(dir, "proxy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Tables[0].Rows[1][0] != "a|b" || got.Machine.Cores != 2 || !got.Start.Equal(full.Start) {
		t.Errorf("round trip lost data: %+v", got)
	}
	all, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Quick {
		t.Fatalf("ReadDir should prefer the full result over the quick one, got %d results (quick=%v)", len(all), len(all) > 0 && all[0].Quick)
	}
	if err := os.Remove(filepath.Join(dir, "proxy.json")); err != nil {
		t.Fatal(err)
	}
	all, err = ReadDir(dir)
	if err != nil || len(all) != 1 || !all[0].Quick {
		t.Fatalf("ReadDir without full result: %v, %d results", err, len(all))
	}
}

func TestWriteByPartUsesModuleRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	r := sample(true)
	r.DurationSeconds = 0
	r.Start = time.Now().Add(-2 * time.Second)
	path, err := Write("proxy", r)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "bench", "results", "proxy.quick.json"); path != want {
		t.Errorf("Write path = %s, want %s", path, want)
	}
	if r.DurationSeconds <= 0 {
		t.Errorf("Write did not fill the duration")
	}
}

func TestValidateNamesTheProblem(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(r *Result)
		want   string
	}{
		{"no part", func(r *Result) { r.Part = "" }, "part is empty"},
		{"path part", func(r *Result) { r.Part = "../x" }, "plain folder name"},
		{"no command", func(r *Result) { r.Command = "" }, "command is empty"},
		{"ragged row", func(r *Result) { r.Tables[0].AddRow("only one") }, `row 2 has 1 cells, want 3`},
		{"no columns", func(r *Result) { r.AddTable("empty") }, `table "empty" has no columns`},
	}
	for _, tt := range tests {
		r := sample(false)
		tt.mutate(r)
		_, err := Write(filepath.Join(t.TempDir(), "x.json"), r)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tt.name, err, tt.want)
		}
	}
}

func TestReadRejectsUnknownFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	if err := os.WriteFile(path, []byte(`{"part":"x","command":"c","start":"2026-01-01T00:00:00Z","bogus":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(path); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("Read err = %v, want unknown field bogus", err)
	}
}

func TestMarkdownGolden(t *testing.T) {
	tests := []struct {
		name    string
		results []*Result
	}{
		{"empty", nil},
		{"two_parts", func() []*Result {
			q := sample(true)
			q.Part = "collector"
			q.Targets = nil
			return []*Result{q, sample(false)}
		}()},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := Markdown(&buf, tt.results); err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", tt.name+".md")
		if *update {
			if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./bench/report -update)", err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: Markdown differs from %s:\n%s", tt.name, golden, buf.String())
		}
	}
}

func TestShellJoin(t *testing.T) {
	if got := shellJoin([]string{"-quick", "-what", "a b", "it's"}); got != `-quick -what 'a b' 'it'\''s'` {
		t.Errorf("shellJoin = %s", got)
	}
}

func TestTargetPointerSurvivesLaterTargets(t *testing.T) {
	r := sample(false)
	first := r.AtMost("a", 1, 2, "ms")
	for i := 0; i < 20; i++ {
		r.AtMost("more", 1, 0, "ms")
	}
	first.Note = "why"
	if r.Targets[3].Note != "why" {
		t.Errorf("note set through an earlier pointer was lost: %+v", r.Targets[3])
	}
}
