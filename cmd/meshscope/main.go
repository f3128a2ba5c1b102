package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/meshscope/meshscope/cmd/internal/buildinfo"
	"github.com/meshscope/meshscope/cmd/internal/lifecycle"
)

// command is one subcommand: it gets its own arguments and returns the exit code.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"server", "run the collector, stores, service graph, APIs and UI", runServer},
		{"demo", "run the server with a demo shop of meshed services and load", runDemo},
		{"version", "print the version", runVersion},
		{"stat", "golden metrics per service or edge of a running server", runClient("stat")},
		{"top", "live view of the busiest routes", runClient("top")},
		{"traces", "search traces; `traces get ID` prints a waterfall", runClient("traces")},
		{"graph", "service graph edges as a table or DOT", runClient("graph")},
		{"check", "check server health, stores and reporting proxies", runClient("check")},
		{"slo", "SLOs: slo list | slo status NAME | slo rules NAME", runClient("slo")},
		{"migrate", "print or apply the ClickHouse trace store schema", runMigrate},
		{"apply", "apply policy YAML (-f FILE|DIR|-; --dry-run prints the diff)", runPolicy("apply")},
		{"get", "list policies or endpoints (get policies|endpoints)", runPolicy("get")},
		{"delete", "delete a policy (delete KIND NAME)", runPolicy("delete")},
		{"history", "policy versions: who changed what and when", runPolicy("history")},
		{"rollback", "make a new policy version equal to an old one", runPolicy("rollback")},
		{"rollout", "canary rollouts: rollout start -f FILE | status [NAME] | pause|resume|promote|abort NAME", runPolicy("rollout")},
		{"audit", "the audit log: who changed what, when, from where", runPolicy("audit")},
		{"token", "token create --role R [--name N]: a bearer token and its --auth-file line; token create|list|revoke --server URL: through the token API", runToken},
		{"user", "user hash --name N --role R: a --auth-file users line (password from stdin)", runUser},
		{"guard", "SLO guards: guard list | status|pause|resume|revert|promote NAME | events", runPolicy("guard")},
		{"inject", "add the meshscope-proxy sidecar to Kubernetes workloads (-f FILE|-)", runInject},
	}
}

func main() {
	ctx, stop := lifecycle.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "meshscope: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: meshscope COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'meshscope COMMAND --help' for a command's flags.")
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "meshscope version: unexpected argument %q\n", args[0])
		return 2
	}
	fmt.Fprintf(stdout, "meshscope %s\n", buildinfo.Get())
	return 0
}

// newLogger returns a text logger at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
