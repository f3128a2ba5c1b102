// StableLayout places graph nodes in columns by call depth (callers left,
// callees right) and never moves a node it has placed: new nodes get the next
// free slot of their column, removed nodes keep their slot in case they come
// back. Deterministic: the same graph gives the same positions.

export class StableLayout {
  constructor({ colGap = 240, rowGap = 90, subGap = 200 } = {}) {
    this.colGap = colGap;
    this.rowGap = rowGap;
    this.subGap = subGap;
    this.pos = new Map(); // node id -> {x, y}
    this.layers = new Map(); // layer index -> {x0, rows, cols, used}
    this.nextX = 0;
  }

  // place returns a Map of node id -> {x, y} for every node in nodes
  // (iterable of {id, kind}); edges are {source, target}.
  place(nodes, edges) {
    const ids = [];
    const kind = new Map();
    for (const n of nodes) {
      ids.push(n.id);
      kind.set(n.id, n.kind);
    }
    const fresh = ids.filter((id) => !this.pos.has(id));
    if (fresh.length) {
      const layer = layering(ids, kind, edges);
      const preds = new Map();
      for (const e of edges) {
        if (!kind.has(e.source) || !kind.has(e.target)) continue;
        if (!preds.has(e.target)) preds.set(e.target, []);
        preds.get(e.target).push(e.source);
      }
      const byLayer = new Map();
      for (const id of fresh) {
        const l = layer.get(id) || 0;
        if (!byLayer.has(l)) byLayer.set(l, []);
        byLayer.get(l).push(id);
      }
      const total = ids.length;
      for (const l of [...byLayer.keys()].sort((a, b) => a - b)) {
        const list = byLayer.get(l);
        const key = (id) => {
          const ps = (preds.get(id) || []).filter((p) => this.pos.has(p));
          if (!ps.length) return Infinity;
          return ps.reduce((s, p) => s + this.pos.get(p).y, 0) / ps.length;
        };
        const keys = new Map(list.map((id) => [id, key(id)]));
        list.sort((a, b) => (keys.get(a) - keys.get(b)) || (a < b ? -1 : a > b ? 1 : 0));
        let info = this.layers.get(l);
        if (!info) {
          const rows = Math.max(8, Math.ceil(Math.sqrt(total) * 1.2));
          const cols = Math.max(1, Math.ceil(list.length / rows));
          info = { x0: this.nextX, rows, cols, used: 0 };
          this.layers.set(l, info);
          this.nextX += (cols - 1) * this.subGap + this.colGap;
        }
        for (const id of list) this.pos.set(id, this.slot(info, info.used++));
      }
    }
    const out = new Map();
    for (const id of ids) out.set(id, this.pos.get(id));
    return out;
  }

  slot(info, i) {
    const cap = info.rows * info.cols;
    let col, row;
    if (i < cap) {
      col = Math.floor(i / info.rows);
      row = i % info.rows;
    } else {
      // Past the reserved columns: grow downwards, never into the next layer.
      const j = i - cap;
      col = j % info.cols;
      row = info.rows + Math.floor(j / info.cols);
    }
    return { x: info.x0 + col * this.subGap, y: row * this.rowGap };
  }
}

// layering assigns each node its longest-path depth from the callers
// (users and nodes nobody calls are depth 0); cycles are broken at back edges
// of a depth-first search in id order.
export function layering(ids, kind, edges) {
  const out = new Map(ids.map((id) => [id, []]));
  const indeg = new Map(ids.map((id) => [id, 0]));
  for (const e of edges) {
    if (!out.has(e.source) || !out.has(e.target) || e.source === e.target) continue;
    out.get(e.source).push(e.target);
    indeg.set(e.target, indeg.get(e.target) + 1);
  }
  for (const l of out.values()) l.sort();
  const sorted = [...ids].sort();
  const roots = sorted.filter((id) => kind.get(id) === 'user' || indeg.get(id) === 0);
  const state = new Map(); // 1 visiting, 2 done
  const post = [];
  const back = new Set();
  const visit = (start) => {
    // Iterative DFS: deep call chains must not overflow the JS stack.
    const stack = [[start, 0]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [v, i] = top;
      const next = out.get(v);
      if (i < next.length) {
        top[1]++;
        const w = next[i];
        const s = state.get(w);
        if (s === 1) back.add(v + '\u0000' + w);
        else if (!s) {
          state.set(w, 1);
          stack.push([w, 0]);
        }
      } else {
        state.set(v, 2);
        post.push(v);
        stack.pop();
      }
    }
  };
  for (const r of roots) if (!state.get(r)) visit(r);
  for (const id of sorted) if (!state.get(id)) visit(id);
  const layer = new Map(ids.map((id) => [id, 0]));
  for (let k = post.length - 1; k >= 0; k--) {
    const v = post[k];
    for (const w of out.get(v)) {
      if (back.has(v + '\u0000' + w)) continue;
      if (layer.get(w) < layer.get(v) + 1) layer.set(w, layer.get(v) + 1);
    }
  }
  return layer;
}
