package inject

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxInput bounds what is read from the file or stdin.
const maxInput = 64 << 20

// Run is `meshscope inject [-f FILE|-] [flags]`: the injected YAML goes to
// stdout, one line per workload to stderr. Exit 0, 1 on bad input, 2 on a
// bad flag.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := DefaultOptions()
	fs := flag.NewFlagSet("meshscope inject", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: meshscope inject [-f FILE|-] [flags] > injected.yaml\n\n"+
			"Adds the meshscope-proxy sidecar to the Deployments, StatefulSets and DaemonSets\n"+
			"of a YAML stream or List; other documents pass through unchanged. Per workload:\n"+
			"  "+AnnotationInject+": disabled         leave it alone\n"+
			"  "+AnnotationMode+": observe|enforce       override --mode\n"+
			"  "+AnnotationInboundPort+": PORT|none   app port meshed callers reach (default: first containerPort)\n"+
			"  "+AnnotationUpstreams+": svc1,svc2     services it calls (endpoints from the control plane)\n\nFlags:")
		fs.PrintDefaults()
	}
	file := fs.String("f", "-", "YAML `file` to read (- = stdin)")
	fs.StringVar(file, "filename", "-", "same as -f")
	fs.StringVar(&o.Image, "proxy-image", o.Image, "meshscope-proxy `image`")
	fs.StringVar(&o.ControlPlane, "control-plane", o.ControlPlane, "the proxies' control plane `URL` (\"\" = none)")
	fs.StringVar(&o.Collector, "collector", o.Collector, "the proxies' OTLP gRPC collector `host:port` (\"\" = no export)")
	fs.StringVar(&o.TokenSecret, "token-secret", o.TokenSecret, "`Secret` (key token) with the proxy-role token, in each workload's namespace (\"\" = none)")
	fs.StringVar(&o.Mode, "mode", o.Mode, "proxy `mode`: observe (record only) or enforce (apply traffic policies)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshscope inject: unexpected argument %q (read a file with -f)\n", fs.Arg(0))
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "meshscope inject: %v\n", err)
		return 2
	}
	in, name, err := readInput(*file, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "meshscope inject: %v\n", err)
		return 1
	}
	out, outcomes, err := Transform(in, o)
	if err != nil {
		fmt.Fprintf(stderr, "meshscope inject: %s: %v\n", name, err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "meshscope inject: writing: %v\n", err)
		return 1
	}
	for _, oc := range outcomes {
		fmt.Fprintf(stderr, "%s %s\n", strings.ToLower(oc.Object), oc.Action)
	}
	return 0
}

func readInput(file string, stdin io.Reader) ([]byte, string, error) {
	name := file
	r := stdin
	if file == "-" {
		name = "stdin"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, name, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, name, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxInput {
		return nil, name, fmt.Errorf("%s: more than %d MiB of YAML", name, maxInput>>20)
	}
	return b, name, nil
}
