package promapi

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/promql/parser"
)

// Default admission limits of a PromQL expression. Prometheus' parser takes
// time quadratic in the depth of an expression (a 150 KB `up+up+...` takes
// seconds, 1.5 MB takes minutes), so an expression is measured before it is
// parsed: its length in bytes, then its number of lexical tokens, which
// bounds its number of syntax-tree nodes from above (every node has at least
// one token of its own). The defaults are far above hand-written and
// dashboard queries (rarely more than a few hundred tokens) and keep the
// parse of the largest admitted expression well under a second.
const (
	DefaultMaxQueryLength = 256 << 10 // bytes
	DefaultMaxQueryNodes  = 10_000    // tokens, an upper bound of syntax nodes
)

// lexCheckEvery is how many tokens are scanned between context checks.
const lexCheckEvery = 4096

// admit refuses an expression longer than the length limit or with more
// tokens than the node limit, before any parsing; the scan is linear and
// stops at the first token over the limit. Lexical errors are left to the
// parser, which reports them with their position.
func (a *API) admit(ctx context.Context, qs string) *apiError {
	if maxLen := a.opts.MaxQueryLength; maxLen > 0 && len(qs) > maxLen {
		return &apiError{ErrBadData, fmt.Errorf("invalid parameter %q: the expression is %d bytes long, over the limit of %d bytes (query.max_query_length, --query-max-length)", "query", len(qs), maxLen)}
	}
	maxNodes := a.opts.MaxQueryNodes
	if maxNodes <= 0 {
		return nil
	}
	l := parser.Lex(qs)
	var it parser.Item
	for n := 0; ; n++ {
		if n%lexCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return execError(err)
			}
		}
		l.NextItem(&it)
		if it.Typ == parser.EOF || it.Typ == parser.ERROR {
			return nil
		}
		if n+1 > maxNodes {
			return &apiError{ErrBadData, fmt.Errorf("invalid parameter %q: the expression has more than %d syntax nodes, over the limit (query.max_query_nodes, --query-max-nodes)", "query", maxNodes)}
		}
	}
}

// parseAdmitted admits and parses an expression (format_query, parse_query,
// query_exemplars).
func (a *API) parseAdmitted(ctx context.Context, qs string) (parser.Expr, apiResult, bool) {
	if err := a.admit(ctx, qs); err != nil {
		return nil, apiResult{err: err}, false
	}
	expr, err := a.parser.ParseExpr(qs)
	if err != nil {
		return nil, invalidParam(err, "query"), false
	}
	return expr, apiResult{}, true
}
