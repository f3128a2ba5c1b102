// Graph state fed by GET /api/mesh/graph and the /api/mesh/graph/stream
// WebSocket (topology/graph.go is the wire contract): a snapshot replaces the
// state, a diff upserts and removes nodes and edges by id.

export function emptyGraph() {
  return { at: null, window: '', view: '', nodes: new Map(), edges: new Map(), coverage: null, seq: 0 };
}

export function fromSnapshot(g, seq = 0) {
  const s = emptyGraph();
  s.at = g.at;
  s.window = g.window;
  s.view = g.view;
  s.coverage = g.coverage || null;
  s.covered_seconds = g.covered_seconds;
  s.seq = seq;
  for (const n of g.nodes || []) s.nodes.set(n.id, n);
  for (const e of g.edges || []) s.edges.set(e.id || `${e.source}->${e.target}`, e);
  return s;
}

// applyMessage returns the graph after one stream message, and the ids that
// changed ({added, removed, updated} node and edge id sets). It mutates and
// returns state for diffs (the caller owns it), replaces it for snapshots.
export function applyMessage(state, msg) {
  if (msg.type === 'snapshot' && msg.graph) {
    return { state: fromSnapshot(msg.graph, msg.seq), snapshot: true };
  }
  if (msg.type !== 'diff') return { state, ignored: true };
  if (msg.at) state.at = msg.at;
  state.seq = msg.seq;
  for (const id of msg.removed_nodes || []) state.nodes.delete(id);
  for (const id of msg.removed_edges || []) state.edges.delete(id);
  for (const n of msg.upserted_nodes || []) state.nodes.set(n.id, n);
  for (const e of msg.upserted_edges || []) state.edges.set(e.id || `${e.source}->${e.target}`, e);
  // An edge whose end node is gone cannot be drawn.
  for (const [id, e] of state.edges) if (!state.nodes.has(e.source) || !state.nodes.has(e.target)) state.edges.delete(id);
  if (msg.coverage) state.coverage = msg.coverage;
  if (typeof msg.covered_seconds === 'number') state.covered_seconds = msg.covered_seconds;
  return { state, snapshot: false };
}

// Health is always shown with a glyph and a word, never by colour alone.
export const healthInfo = {
  healthy: { glyph: '✓', word: 'healthy', color: '#1a7f37' },
  degraded: { glyph: '!', word: 'degraded', color: '#b35900' },
  failing: { glyph: '✖', word: 'failing', color: '#c62828' },
  no_data: { glyph: '?', word: 'no data', color: '#6b7280' },
};
export function health(h) {
  return healthInfo[h] || healthInfo.no_data;
}

export const kindInfo = {
  service: { label: 'service', shape: 'ellipse' },
  unmeshed: { label: 'unmeshed', shape: 'ellipse' },
  external: { label: 'external', shape: 'hexagon' },
  database: { label: 'database', shape: 'barrel' },
  user: { label: 'user', shape: 'round-triangle' },
};

const healthRank = { failing: 3, degraded: 2, healthy: 1, no_data: 0 };

// groupGraph collapses nodes by group (nodes without one go to "(none)") and
// sums traffic between groups: the view for meshes too big to draw node by
// node.
export function groupGraph(nodes, edges) {
  const groupOf = new Map();
  const groups = new Map();
  for (const n of nodes) {
    const g = n.group || '(none)';
    groupOf.set(n.id, g);
    let a = groups.get(g);
    if (!a) {
      a = { id: 'group:' + g, service: g, group: g, kind: 'service', mode: 'none', health: 'no_data', members: 0, rps: 0, error_rate: 0, p50_ms: 0, p95_ms: 0, p99_ms: 0, bytes_per_sec: 0, _err: 0 };
      groups.set(g, a);
    }
    a.members++;
    a.rps += n.rps || 0;
    a._err += (n.rps || 0) * (n.error_rate || 0);
    a.p50_ms = Math.max(a.p50_ms, n.p50_ms || 0);
    a.p95_ms = Math.max(a.p95_ms, n.p95_ms || 0);
    a.p99_ms = Math.max(a.p99_ms, n.p99_ms || 0);
    a.bytes_per_sec += n.bytes_per_sec || 0;
    if ((healthRank[n.health] || 0) > (healthRank[a.health] || 0)) a.health = n.health;
  }
  for (const a of groups.values()) {
    a.error_rate = a.rps ? a._err / a.rps : 0;
    delete a._err;
  }
  const gedges = new Map();
  for (const e of edges) {
    const s = groupOf.get(e.source), t = groupOf.get(e.target);
    if (s === undefined || t === undefined || s === t) continue;
    const id = `group:${s}->group:${t}`;
    let a = gedges.get(id);
    if (!a) {
      a = { id, source: 'group:' + s, target: 'group:' + t, health: 'no_data', rps: 0, error_rate: 0, p50_ms: 0, p95_ms: 0, p99_ms: 0, _err: 0, seen_by: 'both' };
      gedges.set(id, a);
    }
    a.rps += e.rps || 0;
    a._err += (e.rps || 0) * (e.error_rate || 0);
    a.p99_ms = Math.max(a.p99_ms, e.p99_ms || 0);
    if ((healthRank[e.health] || 0) > (healthRank[a.health] || 0)) a.health = e.health;
  }
  for (const a of gedges.values()) {
    a.error_rate = a.rps ? a._err / a.rps : 0;
    delete a._err;
  }
  return { nodes: [...groups.values()], edges: [...gedges.values()] };
}
