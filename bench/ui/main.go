// Command ui is the browser benchmark of the web UI's topology page: time to
// first render and frame times while the graph stream updates every node
// once a second, for synthetic graphs of 100, 1,000 and 5,000 nodes. It runs
// ui/bench/bench.mjs (Debian's Chromium through playwright-core against the
// UI's fixture server) and writes bench/results/ui.json.
//
// Each size is loaded -loads times; the first render is the median.
//
//	go run ./bench/ui [-quick] [-sizes 100,1000,5000] [-seconds 10] [-loads 5]
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/meshscope/meshscope/bench/report"
)

type row struct {
	Nodes         int     `json:"nodes"`
	Mode          string  `json:"mode"`
	Requested     string  `json:"requested"`
	FirstRenderMs float64 `json:"first_render_ms"`
	FirstRenders  []int   `json:"first_render_all_ms"`
	Updates       int     `json:"updates"`
	SyncP50       float64 `json:"sync_ms_p50"`
	SyncMax       float64 `json:"sync_ms_max"`
	FrameP50      float64 `json:"frame_ms_p50"`
	FrameP95      float64 `json:"frame_ms_p95"`
	FrameMax      float64 `json:"frame_ms_max"`
	FPS           float64 `json:"fps"`
}

func main() {
	quick := flag.Bool("quick", false, "short run (100 and 1,000 nodes, 5 s each)")
	sizes := flag.String("sizes", "100,1000,5000", "comma-separated node counts")
	seconds := flag.Int("seconds", 10, "seconds of 1 Hz updates measured per size")
	loads := flag.Int("loads", 5, "page loads per size; the first render reported is their median")
	out := flag.String("out", "", "write the result here instead of bench/results/")
	flag.Parse()
	if *quick {
		*sizes, *seconds, *loads = "100,1000", 5, 3
	}
	if *loads < 1 {
		fmt.Fprintln(os.Stderr, "bench ui: -loads must be at least 1")
		os.Exit(2)
	}
	if err := run(*sizes, *seconds, *loads, *quick, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench ui:", err)
		os.Exit(1)
	}
}

func run(sizes string, seconds, loads int, quick bool, out string) error {
	root, err := report.ModuleRoot()
	if err != nil {
		return err
	}
	r := report.New("ui")
	r.Title = "Web UI (topology page in headless Chromium)"
	r.Quick = quick
	if _, err := os.Stat(filepath.Join(root, "ui", "dist", "index.html")); err != nil {
		return fmt.Errorf("the UI is not built (run make ui-build): %w", err)
	}
	tmp, err := os.CreateTemp("", "meshscope-ui-bench-*.json")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("node", "ui/bench/bench.mjs", "--sizes", sizes, "--seconds", strconv.Itoa(seconds), "--loads", strconv.Itoa(loads), "--out", tmp.Name())
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("node ui/bench/bench.mjs: %w", err)
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	var raw struct {
		Results []row `json:"results"`
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&raw); err != nil {
		return fmt.Errorf("read bench.mjs output: %w", err)
	}
	t := r.AddTable(fmt.Sprintf("Topology page, stream updating every node at 1 Hz for %d s", seconds),
		"nodes", "drawn as", "first render (ms)", "first render, each load (ms)", "updates", "update JS p50 / max (ms)", "frame p50 / p95 / max (ms)", "frames/s")
	f := report.Num
	for _, x := range raw.Results {
		each := make([]string, len(x.FirstRenders))
		for i, v := range x.FirstRenders {
			each[i] = strconv.Itoa(v)
		}
		t.AddRow(strconv.Itoa(x.Nodes), x.Mode, f(x.FirstRenderMs), strings.Join(each, ", "), strconv.Itoa(x.Updates),
			f(x.SyncP50)+" / "+f(x.SyncMax), f(x.FrameP50)+" / "+f(x.FrameP95)+" / "+f(x.FrameMax), f(x.FPS))
	}
	t.Note("first render: navigation start to the first painted frame with every node (two animation frames after the first sync), the median of %d page loads (a fresh page each; the first load of a size also warms the browser); update JS: applying one stream diff to Cytoscape; frames: requestAnimationFrame intervals in the page.", loads)
	t.Note("Above 1,000 nodes the page draws the grouped view by default; the 'every node' rows at 5,000 force mode=graph.")
	for _, x := range raw.Results {
		if x.Nodes == 1000 && x.Requested == "auto" {
			r.AtMost("first render at 1,000 nodes", 1000, x.FirstRenderMs, "ms")
			r.AtLeast("frames/s with 1 Hz updates at 1,000 nodes", 30, x.FPS, "fps")
		}
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.Note("Load average at the end of the run: %s (2 cores shared with other work inflates every number here; software rendering, --disable-gpu).", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	dest := "ui"
	if out != "" {
		dest = out
	}
	path, err := report.Write(dest, r)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "wrote", path)
	return nil
}
