package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/policy"
)

// DefaultServer is the server URL used when --server is not given.
const DefaultServer = "http://127.0.0.1:7070"

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the server answered with an error or could not be reached
	ExitUsage   = 2 // bad flags, arguments or input files
)

// Run runs the subcommand name (apply, get, delete, history, rollback)
// with its arguments and returns the exit code.
func Run(ctx context.Context, name string, args []string, stdout, stderr io.Writer) int {
	run := map[string]func(context.Context, []string, io.Writer, io.Writer) int{
		"apply": runApply, "get": runGet, "delete": runDelete, "history": runHistory, "rollback": runRollback,
		"rollout": runRollout,
		"audit":   runAudit,
		"guard":   runGuard,
		"token":   runToken,
	}[name]
	if run == nil {
		fmt.Fprintf(stderr, "meshscope: unknown command %q\n", name)
		return ExitUsage
	}
	return run(ctx, args, stdout, stderr)
}

type common struct {
	server    string
	timeout   time.Duration
	output    string
	tokenFile string
}

func newFlags(name, usage string, stderr io.Writer, c *common, formats ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.server, "server", DefaultServer, "base URL of the meshscope server")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "timeout of each request to the server")
	auth.TokenFileFlag(fs, &c.tokenFile)
	if len(formats) > 0 {
		c.output = formats[0]
		fs.StringVar(&c.output, "o", formats[0], "output `format`: "+strings.Join(formats, ", "))
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: meshscope %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags given before, between or after positional args.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, int, bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, ExitOK, false
			}
			return nil, ExitUsage, false
		}
		if fs.NArg() == 0 {
			return pos, 0, true
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func usageError(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "meshscope %s: %s\n", cmd, fmt.Sprintf(format, args...))
	return ExitUsage
}

func failure(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "meshscope %s: %v\n", cmd, err)
	return ExitFailure
}

func checkFormat(got string, formats ...string) error {
	for _, f := range formats {
		if got == f {
			return nil
		}
	}
	return fmt.Errorf("-o %q: want one of %s", got, strings.Join(formats, ", "))
}

// apiError is an error answer of the server.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return fmt.Sprintf("server answered %d: %s", e.code, e.msg) }

// do sends a request and decodes the JSON answer into out.
func (c *common) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	base, err := url.Parse(c.server)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return fmt.Errorf("--server %q: want a URL such as %s", c.server, DefaultServer)
	}
	u := base.JoinPath(path)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
		if bytes.HasPrefix(body, []byte("{")) {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	req.Header.Set(control.HeaderWho, whoAmI())
	token, err := auth.ClientToken(c.tokenFile)
	if err != nil {
		return err
	}
	auth.SetBearer(req, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("server at %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e control.ErrorView
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &apiError{resp.StatusCode, e.Error}
		}
		return &apiError{resp.StatusCode, strings.TrimSpace(string(data))}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decoding the answer of %s: %w", path, err)
	}
	return nil
}

// whoAmI names the CLI user in the history.
func whoAmI() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	if name == "" {
		name = "unknown"
	}
	return "cli " + name + "@" + host
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("apply", "apply -f FILE|DIR|- [--dry-run] [-o text|json] [--server URL]", stderr, &c, "text", "json")
	file := fs.String("f", "", "policy `file`, directory of .yaml/.yml/.json files, or - for stdin")
	dry := fs.Bool("dry-run", false, "validate and print the diff; change nothing")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "apply", "unexpected argument %q (use -f)", pos[0])
	}
	if *file == "" {
		return usageError(stderr, "apply", "-f FILE|DIR|- is required")
	}
	if err := checkFormat(c.output, "text", "json"); err != nil {
		return usageError(stderr, "apply", "%v", err)
	}
	body, err := readPolicies(*file, os.Stdin)
	if err != nil {
		return usageError(stderr, "apply", "%v", err)
	}
	q := url.Values{}
	if *dry {
		q.Set("dry_run", "1")
	}
	var res control.ResultView
	if err := c.do(ctx, http.MethodPost, control.APIPrefix+"/apply", q, body, &res); err != nil {
		return failure(stderr, "apply", err)
	}
	return printResult(stdout, stderr, c.output, res)
}

// readPolicies reads a file, every policy file below a directory, or
// stdin; each file is checked locally first so errors name it.
func readPolicies(path string, stdin io.Reader) ([]byte, error) {
	var files []string
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		if _, err := policy.Load(data); err != nil {
			return nil, fmt.Errorf("stdin: %w", err)
		}
		return data, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != path && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".json")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files", path)
		}
		sort.Strings(files)
	} else {
		files = []string{path}
	}
	var out bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if _, err := policy.Load(data); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if out.Len() > 0 {
			out.WriteString("\n---\n")
		}
		out.Write(data)
	}
	return out.Bytes(), nil
}

func printResult(stdout, stderr io.Writer, format string, res control.ResultView) int {
	if format == "json" {
		return writeJSON(stdout, stderr, res)
	}
	for _, ch := range res.Changes {
		fmt.Fprintf(stdout, "%s %q (service %s): %s\n", strings.ToLower(ch.Kind), ch.Name, ch.Service, pastTense(ch.Op, res.DryRun))
		if res.DryRun && ch.Diff != "" {
			for _, l := range strings.Split(strings.TrimRight(ch.Diff, "\n"), "\n") {
				fmt.Fprintf(stdout, "    %s\n", l)
			}
		}
	}
	switch {
	case res.DryRun:
		fmt.Fprintf(stdout, "dry run: nothing applied (version stays %d)\n", res.Version)
	case res.Changed:
		fmt.Fprintf(stdout, "version %d\n", res.Version)
	default:
		fmt.Fprintf(stdout, "nothing changed (version %d)\n", res.Version)
	}
	return ExitOK
}

func pastTense(op string, dry bool) string {
	if dry {
		switch op {
		case "create":
			return "would be created"
		case "update":
			return "would be updated"
		case "delete":
			return "would be deleted"
		}
		return op
	}
	switch op {
	case "create":
		return "created"
	case "update":
		return "updated"
	case "delete":
		return "deleted"
	}
	return op
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return failure(stderr, "output", err)
	}
	return ExitOK
}

// writeYAML prints v's JSON form as YAML.
func writeYAML(stdout, stderr io.Writer, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return failure(stderr, "output", err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return failure(stderr, "output", err)
	}
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return failure(stderr, "output", err)
	}
	_ = enc.Close()
	return ExitOK
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("get", "get policies|endpoints [--kind KIND] [--service NAME] [-o table|yaml|json] [--server URL]", stderr, &c, "table", "yaml", "json")
	kind := fs.String("kind", "", "only policies of this `kind`")
	service := fs.String("service", "", "only this `service`")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, "get", "want one of: policies, endpoints")
	}
	if err := checkFormat(c.output, "table", "yaml", "json"); err != nil {
		return usageError(stderr, "get", "%v", err)
	}
	q := url.Values{}
	if *service != "" {
		q.Set("service", *service)
	}
	switch pos[0] {
	case "policies", "policy":
		if *kind != "" {
			q.Set("kind", *kind)
		}
		var v control.PoliciesView
		if err := c.do(ctx, http.MethodGet, control.APIPrefix+"/policies", q, nil, &v); err != nil {
			return failure(stderr, "get", err)
		}
		return printPolicies(stdout, stderr, c.output, v)
	case "endpoints", "endpoint":
		if *kind != "" {
			return usageError(stderr, "get", "--kind applies to policies only")
		}
		var v control.EndpointsView
		if err := c.do(ctx, http.MethodGet, control.APIPrefix+"/endpoints", q, nil, &v); err != nil {
			return failure(stderr, "get", err)
		}
		return printEndpoints(stdout, stderr, c.output, v)
	default:
		return usageError(stderr, "get", "%q: want policies or endpoints", pos[0])
	}
}

func printPolicies(stdout, stderr io.Writer, format string, v control.PoliciesView) int {
	switch format {
	case "json":
		return writeJSON(stdout, stderr, v)
	case "yaml":
		// Documents that `apply -f -` takes back.
		enc := yaml.NewEncoder(stdout)
		enc.SetIndent(2)
		for i := range v.Policies {
			if err := enc.Encode(&v.Policies[i]); err != nil {
				return failure(stderr, "get", err)
			}
		}
		_ = enc.Close()
		return ExitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tSERVICE\tMODE\tSOURCE\tSUMMARY")
	for i := range v.Policies {
		d := &v.Policies[i]
		mode := string(d.Mode)
		if mode == "" {
			mode = "(proxy)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Kind, d.Name, d.Service, mode, v.Sources[d.Key().String()], Summary(d))
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "version %d, %d policies\n", v.Version, len(v.Policies))
	return ExitOK
}

// Summary is a one-line description of a document.
func Summary(d *policy.Document) string {
	var parts []string
	if r := d.Route(); r != nil {
		for i, rule := range r.Rules {
			var b []string
			for _, be := range rule.Backends {
				b = append(b, fmt.Sprintf("%s %d%%", be.Version, be.Weight))
			}
			s := strings.Join(b, "/")
			if m := rule.Match; m != nil {
				var conds []string
				if m.Method != "" {
					conds = append(conds, m.Method)
				}
				if m.PathPrefix != "" {
					conds = append(conds, m.PathPrefix+"*")
				}
				if m.PathRegex != "" {
					conds = append(conds, "~"+m.PathRegex)
				}
				for _, h := range m.Headers {
					if h.Regex != "" {
						conds = append(conds, h.Name+"~"+h.Regex)
					} else {
						conds = append(conds, h.Name+"="+h.Exact)
					}
				}
				if len(conds) > 0 {
					s = strings.Join(conds, " ") + " → " + s
				}
			}
			parts = append(parts, fmt.Sprintf("rule %d: %s", i+1, s))
		}
		if r.Timeout > 0 {
			parts = append(parts, "timeout "+r.Timeout.String())
		}
		if t := r.Retries; t != nil {
			parts = append(parts, fmt.Sprintf("retries %d on %s", t.Attempts, strings.Join(t.On, ",")))
		}
		if m := r.Mirror; m != nil {
			parts = append(parts, fmt.Sprintf("mirror %s%% to %s", strconv.FormatFloat(m.Percent, 'g', -1, 64), m.Version))
		}
		if f := r.Fault; f != nil {
			if f.Delay != nil {
				parts = append(parts, fmt.Sprintf("delay %s%% by %s", strconv.FormatFloat(f.Delay.Percent, 'g', -1, 64), f.Delay.Duration))
			}
			if f.Abort != nil {
				parts = append(parts, fmt.Sprintf("abort %s%% with %d", strconv.FormatFloat(f.Abort.Percent, 'g', -1, 64), f.Abort.Status))
			}
		}
	}
	if g := d.Guard(); g != nil {
		parts = append(parts, "when "+describeGuardWhen(g), "then "+strings.Join(guardActions(g), ", "))
	}
	if r := d.Resilience(); r != nil {
		parts = append(parts, r.LoadBalancer)
		if c := r.CircuitBreaker; c != nil {
			parts = append(parts, fmt.Sprintf("breaker %d conns/%d pending/%d requests", c.MaxConnections, c.MaxPending, c.MaxRequests))
		}
		if o := r.OutlierDetection; o != nil {
			parts = append(parts, fmt.Sprintf("eject after %d×5xx for %s", o.Consecutive5xx, o.BaseEjectionTime))
		}
		if l := r.RateLimit; l != nil {
			parts = append(parts, fmt.Sprintf("rate %s/s burst %d", strconv.FormatFloat(l.RequestsPerSecond, 'g', -1, 64), l.Burst))
		}
		if h := r.HealthCheck; h != nil {
			parts = append(parts, fmt.Sprintf("check %s every %s", h.Path, h.Interval))
		}
	}
	return strings.Join(parts, "; ")
}

func printEndpoints(stdout, stderr io.Writer, format string, v control.EndpointsView) int {
	switch format {
	case "json":
		return writeJSON(stdout, stderr, v)
	case "yaml":
		return writeYAML(stdout, stderr, v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tVERSION\tADDRESS\tPROXY\tMODE\tHEALTH\tEJECTED\tCONNECTED\tCONFIG")
	for _, e := range v.Endpoints {
		ej := "no"
		if e.Ejected {
			var by []string
			for _, x := range e.EjectedBy {
				s := "by " + x.ProxyID
				if x.Reason != "" {
					s += ": " + x.Reason
				}
				by = append(by, s)
			}
			ej = "yes (" + strings.Join(by, "; ") + ")"
		}
		conn := "yes"
		if !e.Connected {
			conn = "no, since " + e.Disconnected.Format(time.TimeOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\tv%d\n", e.Service, e.Version, e.Address, e.ProxyID, e.Mode, e.Health, ej, conn, e.ConfigVersion)
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "%d endpoints, %d proxies, policy version %d\n", len(v.Endpoints), len(v.Proxies), v.PolicyVersion)
	return ExitOK
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runChange(ctx, "delete", "delete KIND NAME", 2, "want KIND NAME, e.g. delete route inventory-split", args, stdout, stderr,
		func(pos []string) (string, string, url.Values, error) {
			return http.MethodDelete, control.APIPrefix + "/policies/" + url.PathEscape(pos[0]) + "/" + url.PathEscape(pos[1]), nil, nil
		})
}

func runRollback(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runChange(ctx, "rollback", "rollback VERSION", 1, "want VERSION (see meshscope history)", args, stdout, stderr,
		func(pos []string) (string, string, url.Values, error) {
			if _, err := strconv.ParseUint(pos[0], 10, 64); err != nil {
				return "", "", nil, fmt.Errorf("VERSION %q: want a number", pos[0])
			}
			return http.MethodPost, control.APIPrefix + "/rollback", url.Values{"version": {pos[0]}}, nil
		})
}

// runChange runs a command that takes nargs positional arguments, sends
// the request req builds and prints the change result.
func runChange(ctx context.Context, name, usage string, nargs int, argsHelp string, args []string, stdout, stderr io.Writer,
	req func(pos []string) (method, path string, q url.Values, err error)) int {
	var c common
	fs := newFlags(name, usage+" [-o text|json] [--server URL]", stderr, &c, "text", "json")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) != nargs {
		return usageError(stderr, name, "%s", argsHelp)
	}
	if err := checkFormat(c.output, "text", "json"); err != nil {
		return usageError(stderr, name, "%v", err)
	}
	method, path, q, err := req(pos)
	if err != nil {
		return usageError(stderr, name, "%v", err)
	}
	var res control.ResultView
	if err := c.do(ctx, method, path, q, nil, &res); err != nil {
		return failure(stderr, name, err)
	}
	return printResult(stdout, stderr, c.output, res)
}

func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("history", "history [--limit N] [--diff] [-o table|json] [--server URL]", stderr, &c, "table", "json")
	limit := fs.Int("limit", 20, "show the newest `n` versions (0 = all)")
	diff := fs.Bool("diff", false, "show each change's diff")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "history", "unexpected argument %q", pos[0])
	}
	if err := checkFormat(c.output, "table", "json"); err != nil {
		return usageError(stderr, "history", "%v", err)
	}
	if *limit < 0 {
		return usageError(stderr, "history", "--limit %d: must not be negative", *limit)
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *diff {
		q.Set("diff", "1")
	}
	var v control.HistoryView
	if err := c.do(ctx, http.MethodGet, control.APIPrefix+"/history", q, nil, &v); err != nil {
		return failure(stderr, "history", err)
	}
	if c.output == "json" {
		return writeJSON(stdout, stderr, v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tTIME\tWHO\tACTION\tCHANGES")
	for _, e := range v.Entries {
		action := e.Action
		if e.RollbackTo > 0 {
			action += " to " + strconv.FormatUint(e.RollbackTo, 10)
		}
		var ch []string
		for _, c := range e.Changes {
			ch = append(ch, c.Op+" "+strings.ToLower(c.Kind)+"/"+c.Name)
		}
		summary := strings.Join(ch, ", ")
		if len(summary) > 120 {
			summary = fmt.Sprintf("%s… (%d changes)", summary[:100], len(ch))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Version, e.Time.Local().Format("2006-01-02 15:04:05"), e.Who, action, summary)
		if *diff {
			_ = tw.Flush()
			for _, c := range e.Changes {
				for _, l := range strings.Split(strings.TrimRight(c.Diff, "\n"), "\n") {
					fmt.Fprintf(stdout, "    %s\n", l)
				}
			}
		}
	}
	_ = tw.Flush()
	return ExitOK
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("audit", "audit [--who NAME] [--action A] [--target KIND/NAME] [--since T] [--limit N] [--before SEQ] [--diff] [-o table|json] [--server URL]", stderr, &c, "table", "json")
	who := fs.String("who", "", "only entries by this token or user `name`")
	action := fs.String("action", "", "only this `action` (apply, delete, rollback; a prefix ending in . such as guard.)")
	target := fs.String("target", "", "only entries whose target contains this `text` (Route/web)")
	since := fs.String("since", "", "only entries at or after this `time` (RFC 3339 or Unix seconds)")
	before := fs.Uint64("before", 0, "page backwards: entries with a sequence number below `seq`")
	limit := fs.Int("limit", 50, "show the newest `n` entries (1-1000)")
	diff := fs.Bool("diff", false, "show each entry's diff")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "audit", "unexpected argument %q", pos[0])
	}
	if err := checkFormat(c.output, "table", "json"); err != nil {
		return usageError(stderr, "audit", "%v", err)
	}
	if *limit < 1 || *limit > 1000 {
		return usageError(stderr, "audit", "--limit %d: want 1 to 1000", *limit)
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"who": *who, "action": *action, "target": *target, "since": *since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *before > 0 {
		q.Set("before", strconv.FormatUint(*before, 10))
	}
	var v audit.Page
	if err := c.do(ctx, http.MethodGet, audit.Path, q, nil, &v); err != nil {
		return failure(stderr, "audit", err)
	}
	if c.output == "json" {
		return writeJSON(stdout, stderr, v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tWHO\tROLE\tFROM\tACTION\tTARGETS\tVERSION\tOUTCOME")
	for _, e := range v.Entries {
		ver := "-"
		if e.Version > 0 {
			ver = strconv.FormatUint(e.Version, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format("2006-01-02 15:04:05"),
			e.Who, dash(e.Role), dash(e.From), e.Action, dash(strings.Join(e.Targets, ",")), ver, e.Outcome)
		if *diff && e.Diff != "" {
			_ = tw.Flush()
			for _, l := range strings.Split(strings.TrimRight(e.Diff, "\n"), "\n") {
				fmt.Fprintf(stdout, "    %s\n", l)
			}
		}
	}
	_ = tw.Flush()
	if v.NextBefore > 0 {
		fmt.Fprintf(stdout, "(more: --before %d)\n", v.NextBefore)
	}
	return ExitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
