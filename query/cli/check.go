package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/meshscope/meshscope/query/meshapi"
)

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	var common commonFlags
	common.register(fs)
	minProxies := fs.Int("min-proxies", 1, "fewest reporting proxies that count as healthy (0 to allow none)")
	out := outputFlag(fs, "table", "json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshscope check [--min-proxies 1] [-o table|json] [--server URL]")
		fs.PrintDefaults()
	}
	pos, code, parsed := parse(fs, args, stderr)
	if !parsed {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "check", "unexpected arguments %q", pos)
	}
	if err := checkFormat(*out, "table", "json"); err != nil {
		return usageError(stderr, "check", "%v", err)
	}
	if *minProxies < 0 {
		return usageError(stderr, "check", "--min-proxies %d: must not be negative", *minProxies)
	}
	c, err := common.client()
	if err != nil {
		return usageError(stderr, "check", "%v", err)
	}
	var h meshapi.Health
	_, err = c.get(ctx, "/api/mesh/health", nil, &h, http.StatusServiceUnavailable)
	if *out == "json" {
		if err != nil {
			return failure(stderr, "check", err)
		}
		if code := jsonOut(stdout, stderr, h); code != ExitOK {
			return code
		}
		if h.Status == meshapi.HealthFailing || h.ProxiesReporting < *minProxies || damaged(h) {
			return ExitFailure
		}
		return ExitOK
	}
	ok := true
	line := func(good bool, format string, args ...any) {
		mark := "√"
		if !good {
			mark, ok = "×", false
		}
		fmt.Fprintf(stdout, "%s %s\n", mark, fmt.Sprintf(format, args...))
	}
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			line(false, "server at %s answered %d: %s", common.server, ae.code, ae.msg)
		} else {
			line(false, "server at %s: %v", common.server, err)
		}
		return ExitFailure
	}
	line(true, "server at %s is reachable", common.server)
	names := make([]string, 0, len(h.Stores))
	for n := range h.Stores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := h.Stores[n]
		switch {
		case s.OK && s.Damage != "":
			line(false, "%s store answers; damaged data: %s", n, s.Damage)
		case s.OK:
			line(true, "%s store answers", n)
		case !s.Configured:
			line(false, "%s store is not configured", n)
		default:
			line(false, "%s store: %s", n, s.Error)
		}
	}
	proxies := fmt.Sprintf("%d proxies reporting in the last %s", h.ProxiesReporting, h.ProxyWindow)
	if h.ProxiesReporting == 1 {
		proxies = fmt.Sprintf("1 proxy reporting in the last %s", h.ProxyWindow)
	}
	if h.ProxiesReporting < *minProxies {
		line(false, "%s (want at least %d)", proxies, *minProxies)
	} else {
		line(true, "%s", proxies)
	}
	for _, p := range h.Proxies {
		fmt.Fprintf(stdout, "    %s %s (%s)\n", p.Service, p.Version, p.Mode)
	}
	if !ok {
		fmt.Fprintln(stdout, "\nStatus check results are ×")
		return ExitFailure
	}
	fmt.Fprintln(stdout, "\nStatus check results are √")
	return ExitOK
}

// damaged says whether a store reported data it found unreadable.
func damaged(h meshapi.Health) bool {
	for _, s := range h.Stores {
		if s.Damage != "" {
			return true
		}
	}
	return false
}
