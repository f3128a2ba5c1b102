package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/meshscope/meshscope/control/slo"
)

func runSLO(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("slo", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	out := outputFlag(fs, "table", "json")
	service := fs.String("service", "", "list only the SLOs of this service")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope slo list [--service S] | status NAME | rules NAME  [-o table|json] [--server URL]")
		fs.PrintDefaults()
	}
	pos, code, ok := parse(fs, args, stderr)
	if !ok {
		return code
	}
	if err := checkFormat(*out, "table", "json"); err != nil {
		return usageError(stderr, "slo", "%v", err)
	}
	if len(pos) == 0 {
		fs.Usage()
		return ExitUsage
	}
	sub, rest := pos[0], pos[1:]
	wantArgs := map[string]int{"list": 0, "status": 1, "rules": 1}
	n, ok := wantArgs[sub]
	if !ok {
		return usageError(stderr, "slo", "unknown subcommand %q (want list, status or rules)", sub)
	}
	if len(rest) != n {
		if n == 0 {
			return usageError(stderr, "slo "+sub, "unexpected arguments %q", rest)
		}
		return usageError(stderr, "slo "+sub, "want one SLO name")
	}
	c, err := common.client()
	if err != nil {
		return usageError(stderr, "slo", "%v", err)
	}
	switch sub {
	case "list":
		q := url.Values{}
		if *service != "" {
			q.Set("service", *service)
		}
		var v slo.ListView
		if _, err := c.get(ctx, slo.APIPrefix, q, &v); err != nil {
			return failure(stderr, "slo list", err)
		}
		if *out == "json" {
			return jsonOut(stdout, stderr, v)
		}
		printSLOList(stdout, v.SLOs)
	case "status":
		var s slo.Status
		if _, err := c.get(ctx, slo.APIPrefix+"/"+url.PathEscape(rest[0]), nil, &s); err != nil {
			return failure(stderr, "slo status", err)
		}
		if *out == "json" {
			return jsonOut(stdout, stderr, s)
		}
		printSLOStatus(stdout, s)
	case "rules":
		var r slo.RulesView
		if _, err := c.get(ctx, slo.APIPrefix+"/"+url.PathEscape(rest[0])+"/rules", url.Values{"format": {"json"}}, &r); err != nil {
			return failure(stderr, "slo rules", err)
		}
		if *out == "json" {
			return jsonOut(stdout, stderr, r)
		}
		fmt.Fprint(stdout, r.Rules)
	}
	return ExitOK
}

func fmtPct(p *float64, digits int) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', digits, 64) + "%"
}

func fmtBurn(p *float64) string {
	if p == nil {
		return "-"
	}
	return strconv.FormatFloat(*p, 'f', 1, 64) + "x"
}

func sloState(s slo.Status) string {
	if s.State == slo.StateFiring {
		return "firing:" + s.FiringSeverity
	}
	return s.State
}

func printSLOList(w io.Writer, slos []slo.Status) {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tSERVICE\tROUTE\tOBJECTIVE\tWINDOW\tSLI\tBUDGET LEFT\tBURN (FASTEST PAGE)\tSTATE")
	for _, s := range slos {
		route := s.Route
		if route == "" {
			route = "*"
		}
		burn := "-"
		if len(s.BurnRates) > 0 {
			b := s.BurnRates[0]
			burn = fmtBurn(b.ShortBurnRate) + " " + b.ShortWindow + " / " + fmtBurn(b.LongBurnRate) + " " + b.LongWindow
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%%\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Service, route,
			strconv.FormatFloat(s.Objective, 'f', -1, 64), s.Window, fmtPct(s.SLI, 3), fmtPct(s.ErrorBudget.RemainingPercent, 1), burn, sloState(s))
	}
	_ = tw.Flush()
}

func printSLOStatus(w io.Writer, s slo.Status) {
	fmt.Fprintf(w, "SLO %s: %s%% of %s", s.Name, strconv.FormatFloat(s.Objective, 'f', -1, 64), s.Service)
	if s.Route != "" {
		fmt.Fprintf(w, " %s", s.Route)
	}
	fmt.Fprintf(w, " requests %s over %s\n", indicatorText(s), s.Window)
	fmt.Fprintf(w, "state:        %s\n", sloState(s))
	if s.Error != "" {
		fmt.Fprintf(w, "error:        %s\n", s.Error)
	}
	fmt.Fprintf(w, "SLI:          %s over %s, %s over %s\n", fmtPct(s.SLI, 3), s.Window, fmtPct(s.SLINow, 3), s.NowWindow)
	b := s.ErrorBudget
	left := "-"
	if b.RemainingMinutes != nil {
		left = strconv.FormatFloat(*b.RemainingMinutes, 'f', 1, 64) + " min"
	}
	fmt.Fprintf(w, "error budget: %s of %s min left (%s); %s spent\n", left, strconv.FormatFloat(b.TotalMinutes, 'f', 1, 64), fmtPct(b.RemainingPercent, 1), fmtPct(b.ConsumedPercent, 1))
	tw := newTable(w)
	fmt.Fprintln(tw, "\nSEVERITY\tFACTOR\tLONG\tBURN\tSHORT\tBURN\tEXCEEDED")
	for _, br := range s.BurnRates {
		fmt.Fprintf(tw, "%s\t%sx\t%s\t%s\t%s\t%s\t%v\n", br.Severity, strconv.FormatFloat(br.Factor, 'f', -1, 64), br.LongWindow, fmtBurn(br.LongBurnRate), br.ShortWindow, fmtBurn(br.ShortBurnRate), br.Exceeded)
	}
	_ = tw.Flush()
	if len(s.Alerts) > 0 {
		fmt.Fprintln(w, "\nalerts:")
		for _, a := range s.Alerts {
			fmt.Fprintf(w, "  %s %s since %s\n", a.Severity, a.State, a.ActiveAt.Format("2006-01-02 15:04:05Z07:00"))
		}
	}
	fmt.Fprintf(w, "\nfailing traces: %s\n", s.Traces.UI)
}

func indicatorText(s slo.Status) string {
	switch s.Indicator.Type {
	case "latency":
		return "faster than " + s.Indicator.Threshold.String()
	case "custom":
		return "good (custom queries)"
	default:
		return "succeeding"
	}
}
