package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshscope/meshscope/control/guard"
	"github.com/meshscope/meshscope/control/policy"
)

const guardUsage = "guard list | status NAME | events [NAME] | pause NAME | resume NAME | revert NAME | promote NAME [--server URL] [-o table|json|yaml]"

// runGuard runs `meshscope guard ...` against the guard API.
func runGuard(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("guard", guardUsage, stderr, &c, "table", "json", "yaml")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if err := checkFormat(c.output, "table", "json", "yaml"); err != nil {
		return usageError(stderr, "guard", "%v", err)
	}
	if len(pos) == 0 {
		return usageError(stderr, "guard", "want a subcommand: %s", guardUsage)
	}
	sub, rest := pos[0], pos[1:]
	switch sub {
	case "list":
		if len(rest) != 0 {
			return usageError(stderr, "guard list", "takes no arguments")
		}
		var v guard.ListView
		if err := c.do(ctx, http.MethodGet, guard.APIPrefix+"/guards", nil, nil, &v); err != nil {
			return failure(stderr, "guard list", err)
		}
		if c.output != "table" {
			return writeFormat(stdout, stderr, c.output, v)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSERVICE\tMODE\tSTATE\tWHEN\tTHEN")
		for _, g := range v.Guards {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, g.Service, g.Mode, g.State, g.When, strings.Join(g.Then, ", "))
		}
		_ = tw.Flush()
		return ExitOK
	case "events":
		if len(rest) > 1 {
			return usageError(stderr, "guard events", "want at most a guard name")
		}
		q := url.Values{}
		if len(rest) == 1 {
			q.Set("guard", rest[0])
		}
		var v guard.EventsView
		if err := c.do(ctx, http.MethodGet, guard.APIPrefix+"/events", q, nil, &v); err != nil {
			return failure(stderr, "guard events", err)
		}
		if c.output != "table" {
			return writeFormat(stdout, stderr, c.output, v)
		}
		printEvents(stdout, v.Events)
		return ExitOK
	case "status", guard.OpPause, guard.OpResume, guard.OpRevert, guard.OpPromote:
		if len(rest) != 1 {
			return usageError(stderr, "guard "+sub, "want one guard name")
		}
		name := url.PathEscape(rest[0])
		if sub == "status" {
			var v guard.View
			if err := c.do(ctx, http.MethodGet, guard.APIPrefix+"/guards/"+name, nil, nil, &v); err != nil {
				return failure(stderr, "guard status", err)
			}
			if c.output != "table" {
				return writeFormat(stdout, stderr, c.output, v)
			}
			printGuard(stdout, v)
			return ExitOK
		}
		var res guard.OpResult
		if err := c.do(ctx, http.MethodPost, guard.APIPrefix+"/guards/"+name+"/"+sub, nil, nil, &res); err != nil {
			return failure(stderr, "guard "+sub, err)
		}
		if c.output != "table" {
			return writeFormat(stdout, stderr, c.output, res)
		}
		if res.Event != nil {
			fmt.Fprintf(stdout, "%s: %s\n", res.Guard.Name, res.Event.Summary)
		}
		fmt.Fprintf(stdout, "%s is %s (%s)\n", res.Guard.Name, res.Guard.State, res.Guard.Mode)
		return ExitOK
	}
	return usageError(stderr, "guard", "unknown subcommand %q: %s", sub, guardUsage)
}

func writeFormat(stdout, stderr io.Writer, format string, v any) int {
	if format == "yaml" {
		return writeYAML(stdout, stderr, v)
	}
	return writeJSON(stdout, stderr, v)
}

func printGuard(w io.Writer, v guard.View) {
	fmt.Fprintf(w, "guard:    %s (service %s)\n", v.Name, v.Service)
	fmt.Fprintf(w, "mode:     %s\n", v.Mode)
	fmt.Fprintf(w, "state:    %s\n", v.State)
	fmt.Fprintf(w, "when:     %s\n", v.When)
	fmt.Fprintf(w, "then:     %s\n", strings.Join(v.Then, ", "))
	if a := v.Action; a != nil {
		what := "acting since"
		if a.DryRun {
			what = "would be acting since"
		}
		fmt.Fprintf(w, "action:   %s %s: %s", what, a.Started.Local().Format(time.DateTime), a.Summary)
		if a.Version > 0 {
			fmt.Fprintf(w, " (policy version %d)", a.Version)
		}
		fmt.Fprintln(w)
		for _, ch := range a.Changes {
			fmt.Fprintf(w, "  revert point: %s %s/%s\n", ch.Op, ch.Kind, ch.Name)
		}
	}
	if v.CooldownUntil != nil {
		fmt.Fprintf(w, "cooldown: until %s\n", v.CooldownUntil.Local().Format(time.DateTime))
	}
	if v.Error != "" {
		fmt.Fprintf(w, "error:    %s\n", v.Error)
	}
	if e := v.LastEvent; e != nil {
		fmt.Fprintf(w, "last:     %s %s: %s\n", e.Time.Local().Format(time.DateTime), e.Kind, e.Summary)
	}
}

func printEvents(w io.Writer, evs []guard.Event) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tGUARD\tSERVICE\tEVENT\tMODE\tWHO\tSUMMARY")
	for _, e := range evs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Guard, e.Service, e.Kind, e.Mode, e.Who, e.Summary)
	}
	_ = tw.Flush()
}

func describeGuardWhen(g *policy.Guard) string { return guard.DescribeWhen(g) }

func guardActions(g *policy.Guard) []string { return guard.DescribeThen(g) }
