// Unit tests of the UI's pure modules (no browser).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileFind } from '../src/findexpr.js';
import { StableLayout, layering } from '../src/layout.js';
import { applyMessage, emptyGraph, groupGraph } from '../src/graphmodel.js';
import { buildRows, criticalPath, summarize, searchURL } from '../src/traceutil.js';
import { fmtPct, rateRange, windowToSeconds, fmtSpan } from '../src/api.js';
import { selector, redQueries } from '../src/promql.js';
import { panelTables, tableURL } from '../src/redtables.js';
import { fromSnapshot } from '../src/graphmodel.js';
import { timeParams, apiTime, coverageShort } from '../src/timeparams.js';
import { policyMarks, splitOf, effectiveMode, decisionText, decisionsQuery, groupCounts } from '../src/policymodel.js';
import { actingGuards, guardNodeLabel, guardEdgeLabel } from '../src/guards.js';
import { demoGraph, fixturePolicies, demoTraces, syntheticGraph, bigTrace, guardFixture } from './fixture-server.mjs';

test('find expressions', () => {
  const nodes = demoGraph().nodes;
  const ids = (expr) => nodes.filter(compileFind(expr)).map((n) => n.id).sort();
  const cases = [
    ['pay', ['payments']],
    ['error_rate > 1%', ['checkout', 'payments']],
    ['error_rate > 1% and p99 > 880ms', ['checkout']],
    ['health = failing or kind = database', ['orders-db', 'payments']],
    ['kind != service && rps >= 3', ['reviews', 'user']],
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
  assert.equal(s.spanCount, 14);
  assert.equal(s.services.size, 7);
  const { rows } = buildRows(t);
  assert.equal(rows.length, 14);
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

test('percentages: adaptive precision, never 100 % with errors or 0 % with some', () => {
  const cases = [
    [1, '100%'], [0, '0%'], [0.99834, '99.83%'], [0.996, '99.60%'], [0.9999, '99.990%'], [0.999999, '99.9999%'],
    [0.9999999, '>99.9999%'], [0.0004, '0.040%'], [0.021, '2.1%'], [0.12, '12%'], [0.5, '50%'], [0.95, '95.0%'], [1e-9, '<0.0001%'],
    [null, '–'], [NaN, '–'],
  ];
  for (const [f, want] of cases) assert.equal(fmtPct(f), want, String(f));
  // A degraded service (error rate at least 0.1 %) never reads as a perfect
  // success rate, and any error keeps the success rate below 100 %.
  for (let e = 1e-7; e < 0.2; e *= 1.37) {
    const s = fmtPct(1 - e);
    assert.notEqual(s, '100%', `success with error rate ${e}`);
    assert.notEqual(fmtPct(e), '0%', `error rate ${e}`);
    if (e >= 0.001) assert.ok(parseFloat(s) <= 99.9, `success ${s} with error rate ${e} rounds up to healthy`);
  }
});

test('windows, rate ranges and coverage', () => {
  assert.deepEqual(['1m', '5m', '15m', '1h', '6h', '1d', '7d'].map(windowToSeconds), [60, 300, 900, 3600, 21600, 86400, 604800]);
  assert.equal(windowToSeconds('5400s'), 5400);
  assert.deepEqual(['1m', '5m', '1h', '1d', '7d'].map((w) => rateRange(windowToSeconds(w))), ['1m', '1m', '5m', '120m', '840m']);
  assert.equal(fmtSpan(600), '10m');
  assert.equal(fmtSpan(3900), '1h 5m');
  const q = (s) => new URLSearchParams(s);
  let t = timeParams(q('window=6h'));
  assert.deepEqual(apiTime(t), { window: '6h' });
  assert.equal(t.replay, false);
  t = timeParams(q('window=1d&at=1767268800'));
  assert.deepEqual(apiTime(t), { window: '1d', at: '1767268800' });
  // Absolute range: at=<to>, window=<to-from>.
  t = timeParams(q('from=2026-01-01T10:00:00Z&to=2026-01-01T11:30:00Z&window=5m'));
  assert.deepEqual(apiTime(t), { window: '5400s', at: String(Date.parse('2026-01-01T11:30:00Z') / 1000) });
  assert.equal(t.absolute, true);
  assert.equal(timeParams(q('window=2h')).window, '1m', 'unknown windows fall back to 1m');
  assert.equal(coverageShort(600, 3600), true);
  assert.equal(coverageShort(58, 60), false);
  assert.equal(coverageShort(3600, 3600), false);
  assert.equal(coverageShort(undefined, 3600), false);
});

test('panel queries count each request once (direction) and the user node is its outgoing traffic', () => {
  const nodes = Object.fromEntries(demoGraph().nodes.map((n) => [n.id, n]));
  assert.equal(selector('node', nodes.checkout), 'direction="inbound",destination_service="checkout"');
  assert.equal(selector('node', nodes.reviews), 'direction="outbound",destination_service="reviews"');
  assert.equal(selector('node', nodes.external), 'direction="outbound",destination_service="external"');
  assert.equal(selector('node', nodes.user), 'direction="inbound",source_service="unknown"');
  assert.equal(selector('edge', nodes.user, nodes.web), 'direction="inbound",source_service="unknown",destination_service="web"');
  assert.equal(selector('edge', nodes.web, nodes.reviews), 'direction="outbound",source_service="web",destination_service="reviews"');
  const q = redQueries(selector('node', nodes.checkout), '1m');
  assert.equal(q.rate[0].query, 'sum(rate(mesh_requests_total{direction="inbound",destination_service="checkout"}[1m]))');
});

test('side panel tables ask the native RED API for the subject at the graph time', () => {
  const g = fromSnapshot(demoGraph());
  const n = (id) => g.nodes.get(id);
  const urls = (kind, a, b, graph = g) => panelTables(kind, a, b, graph).map((t) => (t.path ? tableURL(t, '5m', '2026-01-01T12:00:00Z') : 'note'));
  assert.deepEqual(urls('node', n('payments')), [
    '/api/mesh/routes?window=5m&service=payments&at=2026-01-01T12%3A00%3A00Z',
    '/api/mesh/versions?window=5m&service=payments&at=2026-01-01T12%3A00%3A00Z',
  ]);
  assert.deepEqual(urls('node', n('user')), ['/api/mesh/routes?window=5m&source=unknown&at=2026-01-01T12%3A00%3A00Z', '/api/mesh/edges?window=5m&source=unknown&at=2026-01-01T12%3A00%3A00Z']);
  assert.deepEqual(urls('edge', n('checkout'), n('payments')), ['/api/mesh/routes?window=5m&service=payments&source=checkout&at=2026-01-01T12%3A00%3A00Z',
    '/api/mesh/graph?window=5m&view=version&at=2026-01-01T12%3A00%3A00Z']);
  assert.deepEqual(urls('edge', n('user'), n('web'))[0], '/api/mesh/routes?window=5m&service=web&source=unknown&at=2026-01-01T12%3A00%3A00Z');
  // An edge's versions are its version-view edges.
  const vt = panelTables('edge', n('catalog'), n('inventory'), g)[1];
  assert.deepEqual(vt.rowsOf(demoGraph({ view: 'version' })).map((r) => [r.key, r.rps]), [['catalog@v1 → inventory@v1', 12], ['catalog@v1 → inventory@v2', 12]]);
  // Version view: the called version; a caller with several versions has
  // no route rows that add up to one of its edges.
  const v = fromSnapshot(demoGraph({ view: 'version' }));
  const vn = (id) => v.nodes.get(id);
  assert.deepEqual(urls('node', vn('inventory@v2'), undefined, v)[0], '/api/mesh/routes?window=5m&service=inventory&version=v2&at=2026-01-01T12%3A00%3A00Z');
  assert.deepEqual(urls('edge', vn('catalog@v1'), vn('inventory@v2'), v), ['/api/mesh/routes?window=5m&service=inventory&source=catalog&version=v2&at=2026-01-01T12%3A00%3A00Z']);
  const two = { ...vn('inventory@v1'), id: 'inventory@v1' };
  assert.deepEqual(urls('edge', two, vn('catalog@v1'), v), ['note']);
});

test('waterfall rows carry span kind and peer service', () => {
  const t = demoTraces()[0];
  const rows = buildRows(t).rows;
  const label = (r) => `${r.kind === 'client' ? `${r.service} → ${r.peer}` : r.peer ? `${r.peer} → ${r.service}` : r.service} ${r.span.operationName} (${r.kind})`;
  const labels = rows.map(label);
  for (const want of ['unknown → web GET / (server)', 'web → cart GET /cart (client)', 'web → cart GET /cart (server)', 'cart → pricing GET /price (client)',
    'catalog → inventory GET /stock/{id} (client)', 'web → reviews GET /reviews (client)']) {
    assert.ok(labels.includes(want), `${want} not in ${labels.join(' | ')}`);
  }
});

test('trace search asks the server to sort', () => {
  const p = { service: 'payments', operation: '', limit: '20', lookback: '15m', end: '', sort: 'longest', minDuration: '1.5s', maxDuration: '' };
  const u = new URL(searchURL(p, { error: 'true', 'http.route': '/pay' }, 1767268800000), 'http://x');
  assert.equal(u.pathname, '/api/mesh/traces');
  assert.equal(u.searchParams.get('sort'), 'longest');
  assert.equal(u.searchParams.get('status'), 'error');
  assert.deepEqual(u.searchParams.getAll('attr'), ['http.route=/pay']);
  assert.equal(u.searchParams.get('min_duration'), '1.5s');
  assert.equal(Number(u.searchParams.get('end')) - Number(u.searchParams.get('start')), 900);
});

test('policy marks, split weights and the effective mode', () => {
  const modes = { cart: 'enforce', payments: 'observe', inventory: 'observe' };
  const marks = policyMarks([...fixturePolicies, { kind: 'SLO', name: 'web-availability', service: 'web' }], (s) => modes[s]);
  assert.deepEqual(Object.fromEntries(marks), {
    cart: { mode: 'enforce', split: '', splitMode: '' },
    payments: { mode: 'observe', split: '', splitMode: '' },
    inventory: { mode: 'enforce', split: '90/10', splitMode: 'enforce' },
  });
  // Without a document mode the proxy's applies; a proxy without one observes.
  assert.deepEqual(effectiveMode({ kind: 'Resilience' }, 'enforce'), { mode: 'enforce', from: 'proxy' });
  assert.deepEqual(effectiveMode({ kind: 'Resilience' }, undefined), { mode: 'observe', from: 'proxy' });
  assert.deepEqual(effectiveMode({ kind: 'Route', mode: 'observe' }, 'enforce'), { mode: 'observe', from: 'document' });
  const cases = [
    [{ kind: 'Route', rules: [{ backends: [{ version: 'v2', weight: 100 }] }] }, ''],
    [{ kind: 'Route', rules: [{ backends: [{ version: 'v2', weight: 100 }] }, { backends: [{ version: 'v1', weight: 80 }, { version: 'v2', weight: 20 }] }] }, '80/20'],
    [{ kind: 'Route', rules: [{ backends: [{ version: 'v1', weight: 100 }, { version: 'v2', weight: 0 }] }] }, ''],
    [{ kind: 'Resilience' }, ''],
  ];
  for (const [doc, want] of cases) assert.equal(splitOf(doc), want, JSON.stringify(doc));
});

test('decision counts: query, grouping and words', () => {
  assert.equal(decisionsQuery('pay"x', '1h'), 'sum by (policy_kind, policy, decision, enforced) (increase(mesh_policy_decisions_total{service="pay\\"x"}[3600s]))');
  const by = groupCounts([
    { metric: { policy_kind: 'Route', policy: 'r', decision: 'retry', enforced: 'false' }, value: 13.6 },
    { metric: { policy_kind: 'Route', policy: 'r', decision: 'timeout', enforced: 'false' }, value: 0.4 },
    { metric: { policy_kind: 'Route', policy: 'r', decision: 'retry', enforced: 'true' }, value: 2 },
    { metric: { policy_kind: 'Resilience', policy: 'x', decision: 'rate_limited', enforced: 'true' }, value: 1 },
  ]);
  assert.deepEqual(Object.fromEntries(by), {
    'Route/r': [{ decision: 'retry', enforced: false, n: 14 }, { decision: 'retry', enforced: true, n: 2 }],
    'Resilience/x': [{ decision: 'rate_limited', enforced: true, n: 1 }],
  });
  const words = [
    ['retry', false, 14, 'would have retried 14 times'],
    ['retry', true, 1, 'retried once'],
    ['route:v2', true, 60, 'sent 60 requests to v2'],
    ['route:v2', false, 1, 'would have sent 1 request to v2'],
    ['timeout', false, 3, 'would have timed out 3 requests'],
    ['rate_limited', false, 3, 'would have answered 429 to 3 requests'],
    ['breaker_open', true, 2, 'answered 503 (breaker open) to 2 requests'],
    ['retry_budget_spent', false, 2, 'would have skipped 2 retries: budget spent'],
    ['ejected', false, 5, 'would have kept 5 requests off ejected endpoints'],
    ['mirror', true, 9, 'mirrored 9 requests'],
    ['fault_abort', false, 4, 'would have aborted 4 requests'],
    ['something_new', true, 2, 'something_new: 2 requests'],
  ];
  for (const [d, e, n, want] of words) assert.equal(decisionText(d, e, n), want);
});

test('guard marks: only acting guards with an action mark their service; labels keep the node name first', () => {
  const gf = guardFixture();
  const acting = actingGuards({ guards: gf.list() });
  assert.deepEqual([...acting.keys()], ['inventory']); // payments-shed is only triggered (dry-run)
  assert.equal(guardNodeLabel('✓ inventory ◆\n12 rps', acting.get('inventory')), '✓ inventory ◆ ⚑ acting\n12 rps');
  assert.equal(guardNodeLabel('inventory', acting.get('inventory')), 'inventory ⚑ acting');
  assert.equal(guardNodeLabel('✓ web\n1 rps', acting.get('web')), '✓ web\n1 rps');
  assert.equal(guardNodeLabel('', acting.get('inventory')), '', 'zoomed-out graphs draw no label');
  assert.equal(guardEdgeLabel(acting.get('inventory')), '⚑ break (5% probes)');
  assert.equal(guardEdgeLabel(undefined), '');
  gf.op('inventory-break', 'revert', 'alice');
  assert.equal(actingGuards({ guards: gf.list() }).size, 0, 'a reverted guard still marked');
  assert.equal(actingGuards(null).size, 0);
});
