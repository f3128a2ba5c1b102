package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CommandEnv names the environment variable through which bench/bench.mk
// tells a part the make command that started it (for example
// "make bench WHAT=proxy"). Without it, the command is reconstructed as
// "go run ./bench/<part> <args>".
const CommandEnv = "BENCH_COMMAND"

// ResultsDir is where results live, relative to the module root.
const ResultsDir = "bench/results"

// Result is everything one run of one benchmark part measured.
type Result struct {
	// Part is the benchmark's name: the folder bench/<part>.
	Part string `json:"part"`
	// Title is a human heading for the part (defaults to Part).
	Title string `json:"title,omitempty"`
	// Command is the exact command that reproduces the result.
	Command string `json:"command"`
	// Invocation is the program and its arguments as actually run.
	Invocation string `json:"invocation,omitempty"`
	// Quick is true for a short sanity run (-quick): indicative only.
	Quick bool `json:"quick,omitempty"`
	// Start is when the run began.
	Start time.Time `json:"start"`
	// DurationSeconds is how long the run took, in seconds.
	DurationSeconds float64 `json:"duration_seconds"`
	// Machine holds the facts of the machine the run used.
	Machine Machine `json:"machine"`
	// Tables are the measurements, rendered in order.
	Tables []*Table `json:"tables,omitempty"`
	// Targets are the goals of the part's issue with what was measured.
	Targets []*Target `json:"targets,omitempty"`
	// Notes explain the numbers: noise, missed targets and why, caveats.
	Notes []string `json:"notes,omitempty"`
}

// Table is a titled grid of already formatted cells.
type Table struct {
	Title   string     `json:"title"`
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
	// Notes are shown under the table.
	Notes []string `json:"notes,omitempty"`
}

// Target is one goal of the benchmark and whether it was met.
type Target struct {
	// Name says what is measured, e.g. "added p99 at 1000 rps".
	Name string `json:"name"`
	// Target is the goal as text, e.g. "≤ 0.5 ms".
	Target string `json:"target"`
	// Measured is the measured value as text, e.g. "0.42 ms".
	Measured string `json:"measured"`
	// Met reports whether the goal was reached.
	Met bool `json:"met"`
	// Inconclusive marks a measurement too disturbed to judge (for example
	// a baseline inflated by other load); Met is then not meaningful.
	Inconclusive bool `json:"inconclusive,omitempty"`
	// Note explains a miss, an inconclusive result or a caveat (optional).
	Note string `json:"note,omitempty"`
}

// New starts a result for part, recording the start time, the command
// and the machine facts.
func New(part string) *Result {
	inv := "go run ./bench/" + part
	if len(os.Args) > 1 {
		inv += " " + shellJoin(os.Args[1:])
	}
	cmd := os.Getenv(CommandEnv)
	if cmd == "" {
		cmd = inv
	}
	return &Result{
		Part:       part,
		Command:    cmd,
		Invocation: inv,
		Start:      time.Now().UTC(),
		Machine:    DetectMachine(),
	}
}

// AddTable appends a table with the given columns and returns it.
func (r *Result) AddTable(title string, columns ...string) *Table {
	t := &Table{Title: title, Columns: columns, Rows: [][]string{}}
	r.Tables = append(r.Tables, t)
	return t
}

// AddRow appends a row; it must have one cell per column (Write checks).
func (t *Table) AddRow(cells ...string) {
	t.Rows = append(t.Rows, cells)
}

// Note appends a note under the table.
func (t *Table) Note(format string, args ...any) {
	t.Notes = append(t.Notes, fmt.Sprintf(format, args...))
}

// Note appends a note to the result.
func (r *Result) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// AddTarget appends a target and returns it (to add a Note later).
func (r *Result) AddTarget(t Target) *Target {
	p := &t
	r.Targets = append(r.Targets, p)
	return p
}

// AtMost records a target "measured ≤ limit" in unit (e.g. "ms", "MB").
func (r *Result) AtMost(name string, limit, measured float64, unit string) *Target {
	return r.AddTarget(Target{
		Name:     name,
		Target:   "≤ " + withUnit(Num(limit), unit),
		Measured: withUnit(Num(measured), unit),
		Met:      !math.IsNaN(measured) && measured <= limit,
	})
}

// AtLeast records a target "measured ≥ limit" in unit.
func (r *Result) AtLeast(name string, limit, measured float64, unit string) *Target {
	return r.AddTarget(Target{
		Name:     name,
		Target:   "≥ " + withUnit(Num(limit), unit),
		Measured: withUnit(Num(measured), unit),
		Met:      !math.IsNaN(measured) && measured >= limit,
	})
}

func withUnit(v, unit string) string {
	switch unit {
	case "":
		return v
	case "×", "x", "%":
		return v + unit
	}
	return v + " " + unit
}

// Num formats v with three significant digits and no exponent
// (1234.5 → "1235", 0.012345 → "0.0123", NaN → "n/a").
func Num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if v == 0 {
		return "0"
	}
	abs := math.Abs(v)
	if abs >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	decimals := 2 - int(math.Floor(math.Log10(abs)))
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// Validate checks that the result is complete and every table is
// rectangular; the error names the bad field.
func (r *Result) Validate() error {
	if r.Part == "" {
		return errors.New("result: part is empty")
	}
	if strings.ContainsAny(r.Part, `/\ `) || strings.HasPrefix(r.Part, ".") {
		return fmt.Errorf("result: part %q must be a plain folder name", r.Part)
	}
	if r.Command == "" {
		return fmt.Errorf("result %q: command is empty", r.Part)
	}
	if r.Start.IsZero() {
		return fmt.Errorf("result %q: start is not set", r.Part)
	}
	for i, t := range r.Tables {
		if t == nil {
			return fmt.Errorf("result %q: table %d is nil", r.Part, i)
		}
		if len(t.Columns) == 0 {
			return fmt.Errorf("result %q: table %q has no columns", r.Part, t.Title)
		}
		for j, row := range t.Rows {
			if len(row) != len(t.Columns) {
				return fmt.Errorf("result %q: table %q row %d has %d cells, want %d (columns %v)",
					r.Part, t.Title, j, len(row), len(t.Columns), t.Columns)
			}
		}
	}
	for i, t := range r.Targets {
		if t == nil {
			return fmt.Errorf("result %q: target %d is nil", r.Part, i)
		}
		if t.Name == "" {
			return fmt.Errorf("result %q: target %d has no name", r.Part, i)
		}
	}
	return nil
}

// FileName is the results file name of a part: "<part>.json", or
// "<part>.quick.json" for a quick run.
func FileName(part string, quick bool) string {
	if quick {
		return part + ".quick.json"
	}
	return part + ".json"
}

// Write stores r as indented JSON. dest is either a file path (it contains
// a path separator or ends in ".json") or a part name, in which case the
// file is bench/results/<part>.json (<part>.quick.json when r.Quick) under
// the module root. If r.DurationSeconds is zero it is set to the time since
// r.Start. Write returns the path written.
func Write(dest string, r *Result) (string, error) {
	if r == nil {
		return "", errors.New("write result: nil result")
	}
	if r.DurationSeconds == 0 && !r.Start.IsZero() {
		r.DurationSeconds = math.Round(time.Since(r.Start).Seconds()*10) / 10
	}
	if err := r.Validate(); err != nil {
		return "", fmt.Errorf("write result: %w", err)
	}
	path := dest
	if !strings.ContainsAny(dest, `/\`) && !strings.HasSuffix(dest, ".json") {
		root, err := ModuleRoot()
		if err != nil {
			return "", fmt.Errorf("write result %q: %w", dest, err)
		}
		path = filepath.Join(root, ResultsDir, FileName(dest, r.Quick))
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("write result %q: %w", r.Part, err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("write result %q: %w", r.Part, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return "", fmt.Errorf("write result %q: %w", r.Part, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write result %q: %w", r.Part, err)
	}
	return path, nil
}

// Read loads one results file strictly (unknown fields are an error).
func Read(path string) (*Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var r Result
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	return &r, nil
}

// ReadDir loads every *.json file of dir, sorted by part name. For a part
// with both a full and a quick result, only the full one is returned.
func ReadDir(dir string) ([]*Result, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("read results in %s: %w", dir, err)
	}
	byPart := map[string]*Result{}
	for _, p := range paths {
		r, err := Read(p)
		if err != nil {
			return nil, err
		}
		if prev, ok := byPart[r.Part]; ok && !prev.Quick && r.Quick {
			continue
		}
		byPart[r.Part] = r
	}
	out := make([]*Result, 0, len(byPart))
	for _, r := range byPart {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Part < out[j].Part })
	return out, nil
}

// ModuleRoot finds the directory holding go.mod, starting at the working
// directory and walking up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// shellJoin quotes args so that the joined string can be pasted in a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;!#~") {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
