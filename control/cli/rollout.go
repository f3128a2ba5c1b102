package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/meshscope/meshscope/control/rollout"
)

const rolloutUsage = "rollout start -f FILE | status [NAME] | pause|resume|promote|abort NAME [--server URL] [-o text|json]"

// runRollout is `meshscope rollout`: start, status and the operator
// controls of the rollout API (/api/mesh/v1/rollouts).
func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	var file string
	fs := newFlags("rollout", rolloutUsage, stderr, &c, "text", "json")
	fs.StringVar(&file, "f", "", "Rollout YAML `file` (- = stdin) for start")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if err := checkFormat(c.output, "text", "json"); err != nil {
		return usageError(stderr, "rollout", "%v", err)
	}
	if len(pos) == 0 {
		fs.Usage()
		return ExitUsage
	}
	switch verb := pos[0]; verb {
	case "start":
		if file == "" || len(pos) != 1 {
			return usageError(stderr, "rollout", "start takes -f FILE")
		}
		data, err := readPolicies(file, os.Stdin)
		if err != nil {
			return usageError(stderr, "rollout", "%v", err)
		}
		var v rollout.ListView
		if err := c.do(ctx, http.MethodPost, rollout.APIPrefix, nil, data, &v); err != nil {
			return failure(stderr, "rollout", err)
		}
		if c.output == "json" {
			return printJSON(stdout, stderr, v)
		}
		printRolloutList(stdout, v.Rollouts)
		return ExitOK
	case "status":
		switch len(pos) {
		case 1:
			var v rollout.ListView
			if err := c.do(ctx, http.MethodGet, rollout.APIPrefix, nil, nil, &v); err != nil {
				return failure(stderr, "rollout", err)
			}
			if c.output == "json" {
				return printJSON(stdout, stderr, v)
			}
			printRolloutList(stdout, v.Rollouts)
		case 2:
			var s rollout.State
			if err := c.do(ctx, http.MethodGet, rollout.APIPrefix+"/"+url.PathEscape(pos[1]), nil, nil, &s); err != nil {
				return failure(stderr, "rollout", err)
			}
			if c.output == "json" {
				return printJSON(stdout, stderr, s)
			}
			printRolloutStatus(stdout, s)
		default:
			return usageError(stderr, "rollout", "status takes at most one NAME")
		}
		return ExitOK
	case rollout.ActionPause, rollout.ActionResume, rollout.ActionPromote, rollout.ActionAbort:
		if len(pos) != 2 {
			return usageError(stderr, "rollout", "%s takes one NAME", verb)
		}
		var v rollout.Summary
		if err := c.do(ctx, http.MethodPost, rollout.APIPrefix+"/"+url.PathEscape(pos[1])+"/"+verb, nil, []byte{}, &v); err != nil {
			return failure(stderr, "rollout", err)
		}
		if c.output == "json" {
			return printJSON(stdout, stderr, v)
		}
		printRolloutList(stdout, []rollout.Summary{v})
		return ExitOK
	default:
		return usageError(stderr, "rollout", "unknown verb %q (want start, status, pause, resume, promote or abort)", verb)
	}
}

func printJSON(stdout, stderr io.Writer, v any) int { return writeJSON(stdout, stderr, v) }

func stepsLine(steps []int, step int, phase string) string {
	parts := make([]string, len(steps))
	for i, w := range steps {
		parts[i] = fmt.Sprint(w)
		if i == step && !strings.Contains("promoted rolled_back aborted", phase) {
			parts[i] = "[" + parts[i] + "]"
		}
	}
	return strings.Join(parts, " ")
}

func printRolloutList(w io.Writer, list []rollout.Summary) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSERVICE\tSTABLE→CANARY\tPHASE\tSTEPS\tCANARY %\tFAILURES\tLAST\tHELD")
	for _, s := range list {
		last := "-"
		if s.Last != nil {
			last = fmt.Sprintf("%s %.0f", s.Last.Result.Verdict, s.Last.Result.Score)
		}
		held := s.Held
		if held == "" {
			held = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s→%s\t%s\t%s\t%d\t%d/%d\t%s\t%s\n", s.Name, s.Service, s.Stable, s.Canary, s.Phase,
			stepsLine(s.Steps, s.Step, s.Phase), s.Weight, s.Failures, s.FailureLimit, last, held)
	}
	_ = tw.Flush()
}

func fmtOpt(p *float64, format string) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf(format, *p)
}

func printRolloutStatus(w io.Writer, s rollout.State) {
	steps := make([]int, len(s.Spec.Steps))
	for i, st := range s.Spec.Steps {
		steps[i] = st.Weight
	}
	fmt.Fprintf(w, "Rollout %s: %s %s → %s\n", s.Name, s.Service, s.Stable, s.Canary)
	fmt.Fprintf(w, "Phase:    %s\nSteps:    %s (canary %d%%)\nFailures: %d of %d\n", s.Phase, stepsLine(steps, s.Step, s.Phase), s.Weight, s.Failures, s.Spec.FailureLimit)
	if s.Held != "" {
		fmt.Fprintf(w, "Held:     %s\n", s.Held)
	}
	if n := len(s.Intervals); n > 0 {
		last := s.Intervals[n-1]
		r := last.Result
		fmt.Fprintf(w, "\nLast interval %s–%s (step %d, canary %d%%): %s, score %.1f, latency from %s\n",
			last.Start.UTC().Format("15:04:05"), last.End.UTC().Format("15:04:05"), last.Step+1, last.Weight, r.Verdict, r.Score, r.LatencySource)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "METRIC\tVERDICT\tCANARY\tSTABLE\tLIMIT\tP\tEFFECT\tTEST")
		for _, m := range r.Metrics {
			fmt.Fprintf(tw, "%s\t%s\t%.4g\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Verdict, m.Canary, fmtOpt(m.Stable, "%.4g"), fmtOpt(m.Limit, "%.4g"),
				fmtOpt(m.P, "%.3g"), fmtOpt(m.Effect, "%+.2f"), m.Test)
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "canary %d requests %d errors, stable %d requests %d errors\n", r.Canary.Requests, r.Canary.Errors, r.Stable.Requests, r.Stable.Errors)
		fmt.Fprintln(w, "\nINTERVALS")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "END\tSTEP\tCANARY %\tVERDICT\tSCORE\tACTION")
		for _, iv := range s.Intervals[max(0, n-10):] {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1f\t%s\n", iv.End.UTC().Format("15:04:05"), iv.Step+1, iv.Weight, iv.Result.Verdict, iv.Result.Score, iv.Action)
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w, "\nEVENTS")
	for _, e := range s.Events[max(0, len(s.Events)-10):] {
		fmt.Fprintf(w, "%s  %-11s %s\n", e.Time.UTC().Format("15:04:05"), e.Type, e.Message)
	}
}
