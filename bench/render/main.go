// Command render turns every benchmark result in bench/results/*.json into
// docs/BENCHMARKS.md. Run it from anywhere inside the module:
//
//	go run ./bench/render
//
// -results and -out override the directories (relative paths are taken
// from the module root).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshscope/meshscope/bench/report"
)

func main() {
	results := flag.String("results", report.ResultsDir, "directory of results files (*.json)")
	out := flag.String("out", "docs/BENCHMARKS.md", "Markdown file to write")
	flag.Parse()
	if err := run(*results, *out); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(resultsDir, out string) error {
	root, err := report.ModuleRoot()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(resultsDir) {
		resultsDir = filepath.Join(root, resultsDir)
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	rs, err := report.ReadDir(resultsDir)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := report.Markdown(&buf, rs); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Printf("rendered %d result(s) into %s\n", len(rs), out)
	return nil
}
