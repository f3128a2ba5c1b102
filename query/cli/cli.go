// Package cli implements the read-side subcommands of the `meshscope`
// binary — stat, top, traces, graph and check — which talk to a running
// server's HTTP API (--server, default http://127.0.0.1:7070) and print
// tables, JSON, DOT or a terminal trace waterfall.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshscope/meshscope/control/auth"
)

// DefaultServer is the server URL used when --server is not given.
const DefaultServer = "http://127.0.0.1:7070"

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the server answered with an error, or `check` found problems
	ExitUsage   = 2 // bad flags or arguments
)

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// Commands lists the subcommands this package implements, for the
// binary's help text.
func Commands() []Command {
	return []Command{
		{"stat", "RED table per service, version or edge (success rate, rps, p50/p95/p99, mode)", runStat},
		{"top", "live view of the busiest routes (--once prints one frame)", runTop},
		{"traces", "search traces; `traces get ID` prints a waterfall", runTraces},
		{"graph", "service graph edges as a table, JSON or DOT", runGraph},
		{"check", "verify server health, stores and reporting proxies (exit 1 on problems)", runCheck},
		{"slo", "SLOs: list, status NAME (SLI, error budget, burn rates, alerts), rules NAME (Prometheus rule file)", runSLO},
	}
}

// Run runs the subcommand name with its arguments (without the name) and
// returns the process exit code. ctx cancellation (SIGINT) stops `top`.
func Run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	for _, c := range Commands() {
		if c.Name == name {
			return c.run(ctx, args, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "meshscope: unknown command %q\n", name)
	return ExitUsage
}

// client talks to the server.
type client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration
}

// commonFlags registers --server and --timeout on fs.
type commonFlags struct {
	server    string
	timeout   time.Duration
	tokenFile string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", DefaultServer, "base URL of the meshscope server")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "timeout of each request to the server")
	auth.TokenFileFlag(fs, &c.tokenFile)
}

func (c *commonFlags) client() (*client, error) {
	u, err := url.Parse(c.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http:// or https:// URL", c.server)
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %s: must be positive", c.timeout)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	token, err := auth.ClientToken(c.tokenFile)
	if err != nil {
		return nil, err
	}
	return &client{base: u, http: &http.Client{Transport: auth.BearerTransport{Token: token}}, timeout: c.timeout}, nil
}

// apiError is an error answer of the server.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("server answered %d: %s", e.code, e.msg) }

// get fetches path?q and decodes the JSON body into out. With okCodes the
// body of those non-200 codes is decoded too (health's 503).
func (c *client) get(ctx context.Context, path string, q url.Values, out any, okCodes ...int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading %s: %w", u.Path, err)
	}
	ok := resp.StatusCode == http.StatusOK
	for _, c := range okCodes {
		ok = ok || resp.StatusCode == c
	}
	if !ok {
		var e struct {
			Error  string `json:"error"`
			Errors []struct {
				Msg string `json:"msg"`
			} `json:"errors"`
		}
		msg := strings.TrimSpace(string(body))
		if json.Unmarshal(body, &e) == nil {
			switch {
			case e.Error != "":
				msg = e.Error
			case len(e.Errors) > 0:
				msg = e.Errors[0].Msg
			}
		}
		return resp.StatusCode, &apiError{resp.StatusCode, msg}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("decoding %s: %w", u.Path, err)
	}
	return resp.StatusCode, nil
}

// parse parses fs, reporting errors on stderr, and returns the positional
// arguments. Flags may come before, between or after positional arguments
// (`traces get ID --server URL`); "--" ends the flags. ok=false means exit
// with code.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (positional []string, code int, ok bool) {
	fs.SetOutput(stderr)
	pos, err := interspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, ExitOK, false
		}
		return nil, ExitUsage, false
	}
	return pos, 0, true
}

func usageError(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "meshscope %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return ExitUsage
}

func failure(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "meshscope %s: %v\n", cmd, err)
	return ExitFailure
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// outputFlag registers -o/--output with the allowed formats.
func outputFlag(fs *flag.FlagSet, formats ...string) *string {
	v := new(string)
	*v = formats[0]
	help := "output format: " + strings.Join(formats, ", ")
	fs.StringVar(v, "o", formats[0], help)
	fs.StringVar(v, "output", formats[0], help)
	return v
}

func checkFormat(got string, formats ...string) error {
	for _, f := range formats {
		if got == f {
			return nil
		}
	}
	return fmt.Errorf("-o %q: want one of %s", got, strings.Join(formats, ", "))
}

// interspersed parses flags wherever they stand among the positional
// arguments, which it returns in order. Everything after "--" is positional.
func interspersed(fs *flag.FlagSet, args []string) (positional []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// firstPositional returns the index of the first positional argument of
// args, skipping flags known to one of the flag sets (and their values,
// unless a flag is boolean or written -flag=value); -1 if there is none.
// It lets a command find its subcommand word among flags (`traces --server
// URL get ID`).
func firstPositional(args []string, sets ...*flag.FlagSet) int {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return i + 1
			}
			return -1
		}
		if len(a) < 2 || a[0] != '-' {
			return i
		}
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		for _, fs := range sets {
			if f := fs.Lookup(name); f != nil {
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
					i++ // the flag's value
				}
				break
			}
		}
	}
	return -1
}
