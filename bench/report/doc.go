// Package report is the shared result format of Meshscope's benchmarks.
//
// Every benchmark part is a program bench/<part>/main.go. It creates a
// Result with New, adds tables, targets and notes while it measures, and
// writes the result with Write to bench/results/<part>.json (or
// bench/results/<part>.quick.json for a -quick run). The program
// bench/render turns every results file into docs/BENCHMARKS.md with
// Markdown. Machine facts (CPU model, cores, Go version, kernel, memory,
// load average) are recorded with every result so numbers can be compared
// honestly across runs.
package report
