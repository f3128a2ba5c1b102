package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/tokenapi"
)

const tokenUsage = "token create --role R --name N --server URL | token list | token revoke NAME [--server URL] [--token-file FILE] [-o text|json]"

// runToken manages the server's tokens through its token API (admins):
// create prints the new token on the first line (shown once; the server
// keeps its SHA-256), list names every token, revoke deletes one created
// through the API.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("token", tokenUsage, stderr, &c, "text", "json")
	role := fs.String("role", "", "create: the token's `role` (viewer, operator, admin, ingest, proxy)")
	name := fs.String("name", "", "create: the token's `name` in the audit log")
	pos, code, ok := parseArgs(fs, args, stderr)
	if !ok {
		return code
	}
	if err := checkFormat(c.output, "text", "json"); err != nil {
		return usageError(stderr, "token", "%v", err)
	}
	if len(pos) == 0 {
		return usageError(stderr, "token", "want create, list or revoke (%s)", tokenUsage)
	}
	switch {
	case pos[0] == "create" && len(pos) == 1:
		if !auth.Role(*role).Valid() {
			return usageError(stderr, "token create", "--role %q: want one of %v", *role, auth.Roles())
		}
		if *name == "" {
			return usageError(stderr, "token create", "--name is required with --server (the token's name in the audit log)")
		}
		body, _ := json.Marshal(tokenapi.CreateRequest{Name: *name, Role: auth.Role(*role)})
		var v tokenapi.CreateResponse
		if err := c.do(ctx, http.MethodPost, tokenapi.Path, nil, body, &v); err != nil {
			return failure(stderr, "token create", err)
		}
		if c.output == "json" {
			return writeJSON(stdout, stderr, v)
		}
		fmt.Fprintf(stdout, "%s\n# token %s (role %s) is active on %s; it is shown only now\n", v.Token, v.Name, v.Role, c.server)
	case pos[0] == "list" && len(pos) == 1:
		var v tokenapi.ListResponse
		if err := c.do(ctx, http.MethodGet, tokenapi.Path, nil, nil, &v); err != nil {
			return failure(stderr, "token list", err)
		}
		if c.output == "json" {
			return writeJSON(stdout, stderr, v)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tSOURCE")
		for _, t := range v.Tokens {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Role, t.Source)
		}
		_ = tw.Flush()
	case pos[0] == "revoke" && len(pos) == 2:
		var v auth.TokenInfo
		if err := c.do(ctx, http.MethodDelete, tokenapi.Path+"/"+url.PathEscape(pos[1]), nil, nil, &v); err != nil {
			return failure(stderr, "token revoke", err)
		}
		if c.output == "json" {
			return writeJSON(stdout, stderr, v)
		}
		fmt.Fprintf(stdout, "revoked token %s (role %s)\n", v.Name, v.Role)
	default:
		return usageError(stderr, "token", "unexpected arguments %q (%s)", pos, tokenUsage)
	}
	return ExitOK
}
