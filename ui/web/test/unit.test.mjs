// Unit tests of the UI's pure modules (no browser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileFind } from '../src/findexpr.js';
import { StableLayout, layering } from '../src/layout.js';
import { applyMessage, emptyGraph, groupGraph } from '../src/graphmodel.js';
import { buildRows, criticalPath, summarize } from '../src/traceutil.js';
import { demoGraph, demoTraces, syntheticGraph, bigTrace } from './fixture-server.mjs';

test('find expressions', () => {
  const nodes = demoGraph().nodes;
  const ids = (expr) => nodes.filter(compileFind(expr)).map((n) => n.id).sort();
  const cases = [
    ['pay', ['payments']],
    ['error_rate > 1%', ['checkout', 'payments']],
    ['error_rate > 1% and p99 > 880ms', ['checkout']],
    ['health = failing or kind = database', ['orders-db', 'payments']],
    ['kind != service && rps >= 3', ['reviews']],
    ['name ~ CART', ['cart']],
    ['p99 >= 0.9s', ['checkout']],
  ];
  for (const [expr, want] of cases) assert.deepEqual(ids(expr), want, expr);
  assert.equal(compileFind('  '), null);
  for (const [bad, msg] of [['error_rate > lots', /not a number for error_rate/], ['colour = red', /unknown field "colour"/], ['rps ~ 3', /text fields/], ['name > 3', /numbers/]]) {
    assert.throws(() => compileFind(bad), msg, bad);
  }
});

test('layering puts callees right of callers and survives cycles', () => {
  const g = demoGraph();
  const layer = layering(g.nodes.map((n) => n.id), new Map(g.nodes.map((n) => [n.id, n.kind])), g.edges);
  assert.equal(layer.get('user'), 0);
  assert.equal(layer.get('web'), 1);
  assert.equal(layer.get('payments'), 3);
  const cyc = layering(['a', 'b', 'c'], new Map(), [{ source: 'a', target: 'b' }, { source: 'b', target: 'c' }, { source: 'c', target: 'a' }]);
  assert.deepEqual([...cyc.values()], [0, 1, 2]);
});

test('stable layout never moves placed nodes', () => {
  const l = new StableLayout();
  const g = demoGraph();
  const first = l.place(g.nodes, g.edges);
  const g2 = demoGraph({ extra: true });
  const second = l.place(g2.nodes, g2.edges);
  for (const [id, p] of first) assert.deepEqual(second.get(id), p, id);
  const rec = second.get('recommendations');
  assert.ok(rec, 'new node placed');
  for (const [id, p] of first) assert.ok(p.x !== rec.x || p.y !== rec.y, `new node overlaps ${id}`);
  // Same input, same output.
  const again = new StableLayout().place(g.nodes, g.edges);
  assert.deepEqual([...again], [...first]);
});

test('stable layout spreads big graphs without overlap', () => {
  const g = syntheticGraph(1000);
  const pos = new StableLayout().place(g.nodes, g.edges);
  const seen = new Set();
  for (const p of pos.values()) {
    const k = `${p.x},${p.y}`;
    assert.ok(!seen.has(k), 'two nodes at ' + k);
    seen.add(k);
  }
});

test('stream messages: snapshot then diffs', () => {
  let s = emptyGraph();
  s = applyMessage(s, { type: 'snapshot', seq: 1, graph: demoGraph() }).state;
  assert.equal(s.nodes.size, 11);
  s = applyMessage(s, { type: 'diff', seq: 2, upserted_nodes: [{ id: 'new', kind: 'service', health: 'healthy' }], removed_nodes: ['payments'], upserted_edges: [{ id: 'web->new', source: 'web', target: 'new' }] }).state;
  assert.equal(s.seq, 2);
  assert.ok(s.nodes.has('new'));
  assert.ok(!s.nodes.has('payments'));
  assert.ok(!s.edges.has('checkout->payments'), 'edge to a removed node is dropped');
  assert.ok(s.edges.has('web->new'));
});

test('group graph sums traffic between groups', () => {
  const g = groupGraph(demoGraph().nodes, demoGraph().edges);
  const shop = g.nodes.find((n) => n.id === 'group:shop');
  assert.equal(shop.members, 5);
  const pay = g.nodes.find((n) => n.id === 'group:payments');
  assert.equal(pay.health, 'failing');
  assert.ok(g.edges.some((e) => e.source === 'group:shop' && e.target === 'group:payments'));
});

test('trace rows, summary and critical path', () => {
  const t = demoTraces()[2]; // slow payments
  const s = summarize(t);
  assert.equal(s.rootService, 'web');
  assert.equal(s.spanCount, 13);
  assert.equal(s.services.size, 7);
  const { rows } = buildRows(t);
  assert.equal(rows.length, 13);
  assert.equal(rows[0].depth, 0);
  assert.equal(rows[4].service, 'inventory');
  assert.equal(rows[4].depth, 4);
  const cp = criticalPath(t);
  const names = rows.filter((r) => cp.has(r.span.spanID)).map((r) => `${r.service} ${r.span.operationName}`);
  assert.ok(names.includes('payments POST /charge'), names.join(', '));
  assert.ok(names.includes('web GET /'));
});

test('a 5,000-span trace gives 5,000 rows and a critical path', () => {
  const t = bigTrace(5000);
  const { rows } = buildRows(t);
  assert.equal(rows.length, 5000);
  assert.ok(criticalPath(t).size > 0);
});
