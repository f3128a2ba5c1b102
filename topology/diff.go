package topology

import (
	"reflect"
	"sort"
)

// Diff returns the stream frame that turns prev into next (Type "diff",
// Seq left zero) and whether anything but the time changed.
func Diff(prev, next *Graph) (StreamMessage, bool) {
	m := StreamMessage{Type: "diff", At: next.At}
	pn := make(map[string]*Node, len(prev.Nodes))
	for i := range prev.Nodes {
		pn[prev.Nodes[i].ID] = &prev.Nodes[i]
	}
	seen := make(map[string]bool, len(next.Nodes))
	for i := range next.Nodes {
		n := &next.Nodes[i]
		seen[n.ID] = true
		if old, ok := pn[n.ID]; !ok || !reflect.DeepEqual(*old, *n) {
			m.UpsertedNodes = append(m.UpsertedNodes, *n)
		}
	}
	for _, n := range prev.Nodes {
		if !seen[n.ID] {
			m.RemovedNodes = append(m.RemovedNodes, n.ID)
		}
	}
	pe := make(map[string]*Edge, len(prev.Edges))
	for i := range prev.Edges {
		pe[prev.Edges[i].ID] = &prev.Edges[i]
	}
	seen = make(map[string]bool, len(next.Edges))
	for i := range next.Edges {
		e := &next.Edges[i]
		seen[e.ID] = true
		if old, ok := pe[e.ID]; !ok || !reflect.DeepEqual(*old, *e) {
			m.UpsertedEdges = append(m.UpsertedEdges, *e)
		}
	}
	for _, e := range prev.Edges {
		if !seen[e.ID] {
			m.RemovedEdges = append(m.RemovedEdges, e.ID)
		}
	}
	if !reflect.DeepEqual(prev.Coverage, next.Coverage) {
		c := next.Coverage
		m.Coverage = &c
	}
	if prev.CoveredSeconds != next.CoveredSeconds {
		c := next.CoveredSeconds
		m.CoveredSeconds = &c
	}
	changed := len(m.UpsertedNodes)+len(m.RemovedNodes)+len(m.UpsertedEdges)+len(m.RemovedEdges) > 0 || m.Coverage != nil || m.CoveredSeconds != nil
	return m, changed
}

// ApplyDiff returns g with the diff frame m applied (g is not modified).
// Nodes and edges come out sorted by id, as the builder sends them.
func ApplyDiff(g *Graph, m StreamMessage) *Graph {
	out := *g
	if !m.At.IsZero() {
		out.At = m.At
	}
	nodes := make(map[string]Node, len(g.Nodes))
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	for _, id := range m.RemovedNodes {
		delete(nodes, id)
	}
	for _, n := range m.UpsertedNodes {
		nodes[n.ID] = n
	}
	edges := make(map[string]Edge, len(g.Edges))
	for _, e := range g.Edges {
		edges[e.ID] = e
	}
	for _, id := range m.RemovedEdges {
		delete(edges, id)
	}
	for _, e := range m.UpsertedEdges {
		edges[e.ID] = e
	}
	out.Nodes = make([]Node, 0, len(nodes))
	for _, n := range nodes {
		out.Nodes = append(out.Nodes, n)
	}
	out.Edges = make([]Edge, 0, len(edges))
	for _, e := range edges {
		out.Edges = append(out.Edges, e)
	}
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].ID < out.Nodes[j].ID })
	sort.Slice(out.Edges, func(i, j int) bool { return out.Edges[i].ID < out.Edges[j].ID })
	if m.Coverage != nil {
		out.Coverage = *m.Coverage
	}
	if m.CoveredSeconds != nil {
		out.CoveredSeconds = *m.CoveredSeconds
	}
	return &out
}
