package promapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// parseQuery answers /api/v1/parse_query: the expression's syntax tree as
// JSON, in the shape Prometheus 3 serves for its UI's tree view (objects with
// a "type" of aggregation, binaryExpr, call, matrixSelector, subquery,
// durationExpr, numberLiteral, parenExpr, stringLiteral, unaryExpr or
// vectorSelector; durations and offsets in milliseconds).
func (a *API) parseQuery(r *http.Request) apiResult {
	expr, res, ok := a.parseAdmitted(r.Context(), r.FormValue("query"))
	if !ok {
		return res
	}
	tree, err := astJSON(expr)
	if err != nil {
		return invalidParam(err, "query")
	}
	return apiResult{data: tree}
}

type jsonObject = map[string]any

func astJSON(node parser.Expr) (any, error) {
	if node == nil {
		return nil, nil
	}
	var err error
	// sub translates a child, keeping the first error.
	sub := func(e parser.Expr) any {
		v, e2 := astJSON(e)
		if e2 != nil && err == nil {
			err = e2
		}
		return v
	}
	dur := func(e parser.Expr) any {
		v, e2 := durationJSON(e)
		if e2 != nil && err == nil {
			err = e2
		}
		return v
	}
	var out any
	switch n := node.(type) {
	case *parser.AggregateExpr:
		out = jsonObject{
			"type":     "aggregation",
			"op":       n.Op.String(),
			"expr":     sub(n.Expr),
			"param":    sub(n.Param),
			"grouping": nonNil(n.Grouping),
			"without":  n.Without,
		}
	case *parser.BinaryExpr:
		var matching any
		if m := n.VectorMatching; m != nil {
			matching = jsonObject{
				"card":       m.Card.String(),
				"labels":     nonNil(m.MatchingLabels),
				"on":         m.On,
				"include":    nonNil(m.Include),
				"fillValues": map[string]*float64{"lhs": m.FillValues.LHS, "rhs": m.FillValues.RHS},
			}
		}
		out = jsonObject{
			"type":     "binaryExpr",
			"op":       n.Op.String(),
			"lhs":      sub(n.LHS),
			"rhs":      sub(n.RHS),
			"matching": matching,
			"bool":     n.ReturnBool,
		}
	case *parser.Call:
		args := make([]any, 0, len(n.Args))
		for _, arg := range n.Args {
			args = append(args, sub(arg))
		}
		out = jsonObject{
			"type": "call",
			"func": jsonObject{
				"name":       n.Func.Name,
				"argTypes":   n.Func.ArgTypes,
				"variadic":   n.Func.Variadic,
				"returnType": n.Func.ReturnType,
			},
			"args": args,
		}
	case *parser.MatrixSelector:
		vs, ok := n.VectorSelector.(*parser.VectorSelector)
		if !ok {
			return nil, fmt.Errorf("matrix selector over %T", n.VectorSelector)
		}
		out = jsonObject{
			"type":       "matrixSelector",
			"name":       vs.Name,
			"range":      n.Range.Milliseconds(),
			"rangeExpr":  dur(n.RangeExpr),
			"offset":     vs.OriginalOffset.Milliseconds(),
			"offsetExpr": dur(vs.OriginalOffsetExpr),
			"matchers":   matchersJSON(vs.LabelMatchers),
			"timestamp":  vs.Timestamp,
			"startOrEnd": startOrEnd(vs.StartOrEnd),
			"anchored":   vs.Anchored,
			"smoothed":   vs.Smoothed,
		}
	case *parser.SubqueryExpr:
		out = jsonObject{
			"type":       "subquery",
			"expr":       sub(n.Expr),
			"range":      n.Range.Milliseconds(),
			"rangeExpr":  dur(n.RangeExpr),
			"offset":     n.OriginalOffset.Milliseconds(),
			"offsetExpr": dur(n.OriginalOffsetExpr),
			"step":       n.Step.Milliseconds(),
			"stepExpr":   dur(n.StepExpr),
			"timestamp":  n.Timestamp,
			"startOrEnd": startOrEnd(n.StartOrEnd),
		}
	case *parser.DurationExpr:
		return durationJSON(n)
	case *parser.NumberLiteral:
		out = map[string]string{"type": "numberLiteral", "val": strconv.FormatFloat(n.Val, 'f', -1, 64)}
	case *parser.ParenExpr:
		out = jsonObject{"type": "parenExpr", "expr": sub(n.Expr)}
	case *parser.StringLiteral:
		out = jsonObject{"type": "stringLiteral", "val": n.Val}
	case *parser.UnaryExpr:
		out = jsonObject{"type": "unaryExpr", "op": n.Op.String(), "expr": sub(n.Expr)}
	case *parser.VectorSelector:
		out = jsonObject{
			"type":       "vectorSelector",
			"name":       n.Name,
			"offset":     n.OriginalOffset.Milliseconds(),
			"offsetExpr": dur(n.OriginalOffsetExpr),
			"matchers":   matchersJSON(n.LabelMatchers),
			"timestamp":  n.Timestamp,
			"startOrEnd": startOrEnd(n.StartOrEnd),
			"anchored":   n.Anchored,
			"smoothed":   n.Smoothed,
		}
	default:
		return nil, fmt.Errorf("unsupported syntax node %T", node)
	}
	return out, err
}

// durationJSON translates a duration expression (a number literal in a
// duration position carries its "duration" flag).
func durationJSON(node parser.Expr) (any, error) {
	switch n := node.(type) {
	case nil:
		return nil, nil
	case *parser.DurationExpr:
		if n == nil {
			return nil, nil
		}
		lhs, err := durationJSON(n.LHS)
		if err != nil {
			return nil, err
		}
		rhs, err := durationJSON(n.RHS)
		if err != nil {
			return nil, err
		}
		return jsonObject{"type": "durationExpr", "op": n.Op.String(), "lhs": lhs, "rhs": rhs, "wrapped": n.Wrapped}, nil
	case *parser.NumberLiteral:
		if n == nil {
			return nil, nil
		}
		return jsonObject{"type": "numberLiteral", "val": strconv.FormatFloat(n.Val, 'f', -1, 64), "duration": n.Duration}, nil
	default:
		return astJSON(n)
	}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func matchersJSON(ms []*labels.Matcher) []jsonObject {
	out := make([]jsonObject, 0, len(ms))
	for _, m := range ms {
		out = append(out, jsonObject{"name": m.Name, "value": m.Value, "type": m.Type.String()})
	}
	return out
}

func startOrEnd(t parser.ItemType) any {
	if t == 0 {
		return nil
	}
	return t.String()
}
