package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/meshscope/meshscope/control/auth"
)

// runToken: `meshscope token create --role R [--name N]` prints a new
// token on the first line and its --auth-file line (holding only the
// token's SHA-256) on the second.
//
// With --server (and for list and revoke) the token is managed through the
// server's token API instead (control/cli).
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "list" || args[0] == "revoke" || hasFlag(args, "server")) {
		return runPolicy("token")(ctx, args, stdout, stderr)
	}
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprintln(stderr, "usage: meshscope token create --role viewer|operator|admin|ingest|proxy [--name NAME] [--out FILE]\n       meshscope token create|list|revoke ... --server URL (through the server's token API)")
		return 2
	}
	fs := flag.NewFlagSet("token create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	role := fs.String("role", "", "the token's `role`: viewer, operator, admin, ingest or proxy (required)")
	name := fs.String("name", "", "the token's `name` in the audit log (default ROLE-RANDOM)")
	out := fs.String("out", "", "write the token to this `file` (mode 0600) instead of stdout")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshscope token create: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	r := auth.Role(*role)
	if !r.Valid() {
		fmt.Fprintf(stderr, "meshscope token create: --role %q: want one of %v\n", *role, auth.Roles())
		return 2
	}
	tok, err := auth.NewToken()
	if err != nil {
		fmt.Fprintf(stderr, "meshscope token create: %v\n", err)
		return 1
	}
	if *name == "" {
		*name = fmt.Sprintf("%s-%s", r, auth.HashToken(tok)[:6])
	}
	line := auth.TokenLine(*name, r, tok)
	f := auth.File{Tokens: []auth.Token{{Name: *name, Role: r, SHA256: auth.HashToken(tok)}}}
	if err := f.Validate(); err != nil {
		fmt.Fprintf(stderr, "meshscope token create: --name: %v\n", err)
		return 2
	}
	if *out != "" {
		if err := os.WriteFile(*out, []byte(tok+"\n"), 0o600); err != nil {
			fmt.Fprintf(stderr, "meshscope token create: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "# token written to %s; add this line under tokens: in the --auth-file\n%s\n", *out, line)
		return 0
	}
	fmt.Fprintf(stdout, "%s\n# add this line under tokens: in the --auth-file (it holds the SHA-256 only)\n%s\n", tok, line)
	return 0
}

// hasFlag reports whether args set the flag name (-name, --name, with = or not).
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name || strings.HasPrefix(a, name+"=") {
			return true
		}
	}
	return false
}

// runUser: `meshscope user hash --name N --role R` reads a password from
// stdin and prints the users line with its bcrypt hash.
func runUser(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "hash" {
		fmt.Fprintln(stderr, "usage: meshscope user hash --name NAME --role viewer|operator|admin < password")
		return 2
	}
	fs := flag.NewFlagSet("user hash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the user's `name` (required)")
	role := fs.String("role", "viewer", "the user's `role`: viewer, operator or admin")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	pw, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "meshscope user hash: reading the password: %v\n", err)
		return 1
	}
	pw = strings.TrimRight(pw, "\r\n")
	if len(pw) < 8 || len(pw) > 72 {
		fmt.Fprintln(stderr, "meshscope user hash: the password (stdin) must be 8 to 72 bytes")
		return 2
	}
	h, err := auth.HashPassword(pw)
	if err != nil {
		fmt.Fprintf(stderr, "meshscope user hash: %v\n", err)
		return 1
	}
	f := auth.File{Users: []auth.User{{Name: *name, Role: auth.Role(*role), Bcrypt: h}}}
	if err := f.Validate(); err != nil {
		fmt.Fprintf(stderr, "meshscope user hash: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "  - {name: %s, role: %s, bcrypt: %q}\n", *name, *role, h)
	return 0
}
