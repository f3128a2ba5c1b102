// A fixture server for the UI tests and for development without a running
// meshscope: it serves ui/dist like the Go handler (SPA fallback, same CSP)
// and answers the APIs the UI calls with data in their exact wire shapes
// (topology/graph.go, Prometheus HTTP API, Jaeger JSON), including the
// graph stream over a minimal server-side WebSocket.
//
//   node test/fixture-server.mjs [port]
import http from 'node:http';
import { createHash } from 'node:crypto';
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const distDir = join(here, '..', '..', 'dist');
export const CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

// The demo shop: web → catalog, cart, checkout; cart → pricing; catalog →
// inventory (v1, v2); checkout → payments (~2 % errors, slow tail);
// reviews has no proxy; checkout calls an external host and a database.
// The user node carries its outgoing traffic (what it sends into the mesh);
// web's 0.4 % errors make it degraded (a whole-percent success rate would
// read 100 %); catalog's rare errors stay below the degraded threshold.
const baseNodes = [
  { id: 'user', service: 'user', kind: 'user', mode: 'none', health: 'degraded', rps: 20, error_rate: 0.004, p50_ms: 5, p95_ms: 40, p99_ms: 90 },
  { id: 'web', service: 'web', kind: 'service', mode: 'observe', health: 'degraded', group: 'shop', versions: ['v1'], rps: 20, error_rate: 0.004, p50_ms: 12, p95_ms: 60, p99_ms: 140 },
  { id: 'catalog', service: 'catalog', kind: 'service', mode: 'observe', health: 'healthy', group: 'shop', versions: ['v1'], rps: 12, error_rate: 0.00017, p50_ms: 4, p95_ms: 12, p99_ms: 20 },
  { id: 'cart', service: 'cart', kind: 'service', mode: 'enforce', health: 'healthy', group: 'shop', versions: ['v1'], rps: 6, error_rate: 0, p50_ms: 3, p95_ms: 9, p99_ms: 15 },
  { id: 'checkout', service: 'checkout', kind: 'service', mode: 'observe', health: 'degraded', group: 'payments', versions: ['v1'], rps: 2, error_rate: 0.021, p50_ms: 40, p95_ms: 300, p99_ms: 900 },
  { id: 'pricing', service: 'pricing', kind: 'service', mode: 'observe', health: 'healthy', group: 'shop', versions: ['v1'], rps: 6, error_rate: 0, p50_ms: 1, p95_ms: 3, p99_ms: 5 },
  { id: 'inventory', service: 'inventory', kind: 'service', mode: 'observe', health: 'healthy', group: 'shop', versions: ['v1', 'v2'], rps: 12, error_rate: 0, p50_ms: 2, p95_ms: 6, p99_ms: 9 },
  { id: 'payments', service: 'payments', kind: 'service', mode: 'observe', health: 'failing', group: 'payments', versions: ['v1'], rps: 2, error_rate: 0.12, p50_ms: 30, p95_ms: 280, p99_ms: 850 },
  { id: 'reviews', service: 'reviews', kind: 'unmeshed', mode: 'none', health: 'healthy', rps: 3, error_rate: 0, p50_ms: 5, p95_ms: 10, p99_ms: 18 },
  { id: 'external', service: 'external', kind: 'external', mode: 'none', health: 'healthy', rps: 1, error_rate: 0, p50_ms: 80, p95_ms: 120, p99_ms: 200 },
  { id: 'orders-db', service: 'orders-db', kind: 'database', mode: 'none', health: 'healthy', rps: 2, error_rate: 0, p50_ms: 2, p95_ms: 4, p99_ms: 8 },
];
const baseEdges = [
  ['user', 'web', 20, 0.004], ['web', 'catalog', 12, 0], ['web', 'cart', 6, 0], ['web', 'checkout', 2, 0.021],
  ['cart', 'pricing', 6, 0], ['catalog', 'inventory', 12, 0], ['checkout', 'payments', 2, 0.12], ['web', 'reviews', 3, 0],
  ['checkout', 'external', 1, 0], ['checkout', 'orders-db', 2, 0],
];

// demoRollout is a rollout in the wire shape of GET /api/mesh/v1/rollouts/NAME
// (control/rollout State): inventory v2 at its third step after two
// passing intervals and one held by a marginal latency verdict.
export function demoRollout(phase = 'progressing', at = new Date()) {
  const t = (s) => new Date(at.getTime() - s * 1000).toISOString();
  const fig = (req, err, p50, p99) => ({ requests: req, errors: err, success_rate: 100 * (req - err) / req, p50, p99, latency_samples: req });
  const metrics = (p, eff, verdict) => [
    { name: 'success_rate', kind: 'threshold', verdict: 'pass', canary: 100, limit: 99, reason: '100.00% ≥ 99.00%' },
    { name: 'error_rate', kind: 'comparison', verdict: 'pass', canary: 0, stable: 0.2, p: 0.81, test: 'two-proportion fisher', effect: -0.2, reason: 'error rate 0.00% vs stable 0.20% (p=0.81 ≥ 0.05)' },
    { name: 'latency', kind: 'comparison', verdict, canary: 0.0061, stable: 0.0058, p, test: 'mann-whitney (normal approx.)', effect: eff, prob_worse: 0.53, reason: `p50 6.1ms vs stable 5.8ms (p=${p})` },
  ];
  const iv = (ago, step, weight, verdict, score, action, p, eff, c, st) => ({
    start: t(ago + 60), end: t(ago), step, weight, action,
    result: { verdict, score, metrics: metrics(p, eff, verdict === 'marginal' ? 'marginal' : 'pass'), latency_source: 'traces', canary: c, stable: st, reason: `score ${score}` },
  });
  const intervals = [
    iv(180, 0, 5, 'pass', 100, 'advanced', 0.41, 1.2, fig(61, 0, 0.0059, 0.021), fig(1150, 2, 0.0058, 0.019)),
    iv(120, 1, 20, 'pass', 100, 'advanced', 0.33, 2.1, fig(240, 0, 0.006, 0.022), fig(960, 2, 0.0058, 0.02)),
    iv(60, 2, 50, 'marginal', 83.3, 'held', 0.09, 14.2, fig(600, 0, 0.0066, 0.024), fig(598, 1, 0.0058, 0.02)),
  ];
  const ev = (ago, type, step, weight, message, who) => ({ time: t(ago), type, step, weight, message, ...(who ? { who } : {}) });
  const events = [
    ev(240, 'started', 0, 5, 'rolling v2 out over v1: steps [5%, 20%, 50%, 100%], interval 1m, failure limit 2'),
    ev(180, 'advanced', 1, 20, 'interval passed (score 100.0; canary 61 req 0 err …): canary to 20%'),
    ev(120, 'advanced', 2, 50, 'interval passed (score 100.0; canary 240 req 0 err …): canary to 50%'),
    ev(60, 'held', 2, 50, 'marginal: score 83.3 below pass_score 90'),
  ];
  if (phase === 'paused') events.push(ev(1, 'paused', 2, 50, 'paused at step 3 (canary 50%)', 'ui'));
  return {
    name: 'inventory-v2', service: 'inventory', stable: 'v1', canary: 'v2', generation: '0f3c2a1b9d8e7f60',
    spec: { stable: 'v1', canary: 'v2', steps: [{ weight: 5 }, { weight: 20 }, { weight: 50 }, { weight: 100 }], interval: '1m0s', min_requests: 50,
      analysis: { success_rate: { min: 99 }, alpha: 0.05, max_degradation: 10, max_error_increase: 1, pass_score: 90, marginal_score: 60 }, failure_limit: 2 },
    phase, step: 2, weight: 50, step_started: t(120), interval_start: t(0), failures: 0, held: 'marginal: score 83.3 below pass_score 90',
    route: 'inventory-v2', intervals, events, started: t(240), updated: t(phase === 'paused' ? 1 : 60),
  };
}

function rolloutSummary(s) {
  return { name: s.name, service: s.service, stable: s.stable, canary: s.canary, phase: s.phase, step: s.step, steps: s.spec.steps.map((x) => x.weight),
    weight: s.weight, failures: s.failures, failure_limit: s.spec.failure_limit, held: s.held, last: s.intervals[s.intervals.length - 1], started: s.started, updated: s.updated };
}

// demoSLOs answers GET /api/mesh/v1/slos in its wire shape (control/slo
// Status): payments burning its budget (page firing), catalog latency
// fine, pricing without traffic.
export function demoSLOs(at = new Date()) {
  const rows = (budget, long, short) => [
    ['page', 14.4, '1h', '5m', 2], ['page', 6, '6h', '30m', 5], ['ticket', 3, '1d', '2h', 10], ['ticket', 1, '3d', '6h', 10],
  ].map(([severity, factor, lw, sw, bp]) => ({
    severity, factor, threshold: +(factor * budget).toPrecision(10), long_window: lw, short_window: sw, budget_percent: bp,
    long_burn_rate: long, short_burn_rate: short, exceeded: long !== null && short !== null && long > factor && short > factor,
  }));
  const traces = (svc) => ({ service: svc, error: true, api: `/api/mesh/traces?service=${svc}&status=error`, ui: `http://127.0.0.1:7070/traces?service=${svc}&status=error` });
  const base = (name, service, objective, budget, type) => ({
    name, service, objective, window: '30d', indicator: type === 'latency' ? { type, threshold: '250ms' } : { type }, alerts: [],
    now_window: '5m', traces: traces(service), evaluated_at: at.toISOString(),
    error_budget: { ratio: budget, total_minutes: +(43200 * budget).toFixed(3), consumed_percent: null, remaining_percent: null, remaining_minutes: null },
  });
  const budgetOf = (b, consumed) => ({ ...b, consumed_percent: consumed, remaining_percent: +(100 - consumed).toFixed(3), remaining_minutes: +(b.total_minutes * (100 - consumed) / 100).toFixed(3) });
  const pay = base('payments-availability', 'payments', 99.9, 0.001, 'availability');
  const active = new Date(at.getTime() - 120000).toISOString();
  Object.assign(pay, {
    state: 'firing', firing_severity: 'page', sli: 96.5, sli_now: 96.2, error_budget: budgetOf(pay.error_budget, 3500), burn_rates: rows(0.001, 35, 38),
    alerts: ['page', 'ticket'].map((severity) => ({ severity, state: 'firing', active_at: active, fired_at: active, value: 0.035, labels: { alertname: 'SLOErrorBudgetBurn', slo: 'payments-availability', service: 'payments', severity } })),
  });
  const cat = base('catalog-latency', 'catalog', 99, 0.01, 'latency');
  Object.assign(cat, { state: 'ok', sli: 99.6, sli_now: 99.5, error_budget: budgetOf(cat.error_budget, 40), burn_rates: rows(0.01, 0.4, 0.5) });
  const pri = base('pricing-availability', 'pricing', 99.5, 0.005, 'availability');
  Object.assign(pri, { state: 'no_data', sli: null, sli_now: null, burn_rates: rows(0.005, null, null) });
  return [cat, pay, pri];
}

function fill(n) {
  return { error_rate: 0, p50_ms: 0, p95_ms: 0, p99_ms: 0, bytes_per_sec: (n.rps || 0) * 900, protocols: n.kind === 'user' ? undefined : ['http1'], ...n };
}
function edgeHealth(err) {
  return err > 0.1 ? 'failing' : err > 0.001 ? 'degraded' : 'healthy';
}
// edgeTLS: calls from outside the mesh or to what has no proxy are
// plaintext; web → cart is mid-rollout (a quarter of its requests still
// plaintext); the rest is mTLS.
function edgeTLS(s, t) {
  if (s === 'user' || t === 'reviews' || t === 'external' || t === 'orders-db') return { tls: 'plaintext', mtls_fraction: 0 };
  if (s === 'web' && t === 'cart') return { tls: 'partial', mtls_fraction: 0.75 };
  return { tls: 'mtls', mtls_fraction: 1 };
}
function mkEdge([s, t, rps, err]) {
  return { id: `${s}->${t}`, source: s, target: t, protocols: ['http1'], health: edgeHealth(err), seen_by: t === 'reviews' || t === 'external' || t === 'orders-db' ? 'source' : s === 'user' ? 'destination' : 'both', ...edgeTLS(s, t), rps, error_rate: err, p50_ms: 5, p95_ms: 40, p99_ms: 90, bytes_per_sec: rps * 900 };
}

// The policies of /api/mesh/v1/policies as the control plane answers them
// (every default filled in): the demo's set (demo/policies.yaml) and an
// enforced breaker and rate limit on cart.
export const fixturePolicies = [
  { kind: 'Resilience', name: 'cart-limits', service: 'cart', mode: 'enforce', load_balancer: 'round-robin',
    circuit_breaker: { max_connections: 64, max_pending: 32, max_requests: 100 }, rate_limit: { requests_per_second: 50, burst: 60 } },
  { kind: 'Resilience', name: 'payments-outliers', service: 'payments', load_balancer: 'p2c-ewma',
    outlier_detection: { consecutive_5xx: 5, interval: '10s', base_ejection_time: '30s', max_ejection_percent: 10 } },
  { kind: 'Route', name: 'inventory-split', service: 'inventory', mode: 'enforce', rules: [{ backends: [{ version: 'v1', weight: 90 }, { version: 'v2', weight: 10 }] }] },
  { kind: 'Route', name: 'payments-retries', service: 'payments', mode: 'observe', timeout: '300ms',
    retries: { attempts: 2, per_try_timeout: '150ms', on: ['5xx', 'connect-failure', 'reset'], budget: { ratio: 0.2, min_per_second: 10 } } },
];
// The decisions per destination service: [policy_kind, policy, decision, enforced, increase].
export const fixtureDecisions = {
  inventory: [['Route', 'inventory-split', 'route:v1', 'true', 540.4], ['Route', 'inventory-split', 'route:v2', 'true', 59.7]],
  payments: [['Route', 'payments-retries', 'retry', 'false', 14.2], ['Route', 'payments-retries', 'timeout', 'false', 3], ['Resilience', 'payments-outliers', 'ejected', 'false', 0]],
  cart: [['Resilience', 'cart-limits', 'rate_limited', 'true', 7]],
};
function fixtureEndpoints() {
  const until = new Date(Date.now() + 30000).toISOString();
  const ep = (service, version, address, ejectedBy) => ({ service, version, address, proxy_id: `${service}-${address.split(':')[1]}`, mode: 'observe', health: 'healthy', ejected: !!ejectedBy, ...(ejectedBy ? { ejected_by: ejectedBy } : {}), connected: true, config_version: 3 });
  return [
    ep('payments', 'v1', '127.0.0.1:9301', [{ proxy_id: 'checkout-1', reason: '5 consecutive 5xx', until }]),
    ep('payments', 'v1', '127.0.0.1:9302'),
  ];
}

// The fixture's data starts this long before "now": windows longer than
// that are only partly covered (covered_seconds).
export const fixtureDataSeconds = 600;
const namedWindows = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '1d': 86400, '7d': 604800 };
export function windowSecs(w) {
  if (namedWindows[w]) return namedWindows[w];
  const m = /^(\d+)s$/.exec(w || '');
  return m ? Number(m[1]) : 60;
}

export function demoGraph({ view = 'service', window = '1m', at = new Date(), extra = false, tick = 0 } = {}) {
  let nodes = baseNodes.map(fill).map((n) => ({ ...n, rps: n.rps ? +(n.rps * (1 + 0.05 * Math.sin(tick))).toFixed(3) : 0 }));
  let edges = baseEdges.map(mkEdge);
  if (extra) {
    nodes.push(fill({ id: 'recommendations', service: 'recommendations', kind: 'service', mode: 'observe', health: 'healthy', group: 'shop', versions: ['v1'], rps: 4, p50_ms: 3, p95_ms: 8, p99_ms: 12 }));
    edges.push(mkEdge(['web', 'recommendations', 4, 0]));
  }
  if (view === 'version') {
    const split = (n) => (n.versions && n.versions.length ? n.versions.map((v) => ({ ...n, id: `${n.id}@${v}`, version: v, rps: n.rps / n.versions.length })) : [n]);
    const idsOf = new Map();
    nodes = nodes.flatMap((n) => {
      const vs = split(n);
      idsOf.set(n.id, vs.map((x) => x.id));
      return vs;
    });
    edges = edges.flatMap((e) => idsOf.get(e.source).flatMap((s) => idsOf.get(e.target).map((t) => ({ ...e, id: `${s}->${t}`, source: s, target: t }))));
  }
  const services = nodes.filter((n) => n.kind === 'service' || n.kind === 'unmeshed');
  const meshed = services.filter((n) => n.kind === 'service');
  return {
    at: at.toISOString(), window, view, nodes, edges,
    covered_seconds: Math.min(windowSecs(window), fixtureDataSeconds),
    coverage: {
      services: services.length, meshed_services: meshed.length, service_fraction: meshed.length / services.length,
      request_fraction: 0.94, observe_services: meshed.filter((n) => n.mode === 'observe').length, enforce_services: meshed.filter((n) => n.mode === 'enforce').length,
      edges: edges.length, edges_both_sides: edges.filter((e) => e.seen_by === 'both').length, unmeshed_services: ['reviews'],
      edges_mtls: edges.filter((e) => e.tls === 'mtls').length, edges_plaintext: edges.filter((e) => e.tls === 'plaintext' || e.tls === 'partial').length,
    },
  };
}

// The native RED tables (GET /api/mesh/routes, versions, edges) as
// projections of the fixture graph, like the server's: a node's or an
// edge's routes split its requests 60/30/10 % (failures in proportion) and
// add up to it; "unknown" is the user node.
const routeSplit = [['/api/items/{id}', 0.6, 1], ['/api/items', 0.3, 0.5], ['unmatched', 0.1, 0.25]];
const fixtureID = (s) => (s === 'unknown' ? 'user' : s);
function tableRow(x) {
  return { rps: x.rps, requests: x.rps * 60, success_rate: 1 - x.error_rate, error_rate: x.error_rate, p50_ms: x.p50_ms, p95_ms: x.p95_ms, p99_ms: x.p99_ms, seen_by: x.seen_by === 'source' ? 'outbound' : 'inbound', mtls_fraction: x.tls ? x.mtls_fraction : null };
}
function fixtureRoutes(service, source, version) {
  const g = demoGraph({ view: version ? 'version' : 'service' });
  let subjects;
  if (source) subjects = g.edges.filter((e) => e.source.split('@')[0] === fixtureID(source) && (!service || e.target.split('@')[0] === service) && (!version || e.target.endsWith('@' + version)));
  else subjects = g.nodes.filter((n) => n.kind !== 'user' && (!service || n.service === service) && (!version || n.version === version));
  return subjects.flatMap((x) => routeSplit.map(([route, share, p99]) => ({ service: x.target ? x.target.split('@')[0] : x.service, route, ...tableRow({ ...x, rps: x.rps * share, p99_ms: x.p99_ms * p99 }) })));
}
function fixtureVersions(service) {
  return demoGraph({ view: 'version' }).nodes.filter((n) => n.kind !== 'user' && (!service || n.service === service))
    .map((n) => ({ service: n.service, version: n.version || '', mode: n.mode, ...tableRow(n) }));
}
function fixtureEdges(source, destination) {
  return demoGraph().edges.filter((e) => (!source || e.source === fixtureID(source)) && (!destination || e.target === destination))
    .map((e) => ({ source: e.source === 'user' ? 'unknown' : e.source, destination: e.target, ...tableRow(e) }));
}

// Synthetic graphs for the benchmark: n nodes in groups of 50, a call tree.
export function syntheticGraph(n, tick = 0) {
  const nodes = [], edges = [];
  for (let i = 0; i < n; i++) {
    const err = (i * 7919 + tick) % 97 === 0 ? 0.05 : 0;
    nodes.push(fill({ id: `svc-${i}`, service: `svc-${i}`, kind: i % 53 === 7 ? 'unmeshed' : 'service', mode: 'observe', health: err ? 'failing' : 'healthy', group: `g${Math.floor(i / 50)}`, rps: 1 + ((i * 31 + tick) % 17), error_rate: err, p50_ms: 3, p95_ms: 20, p99_ms: 40 + (i % 13) }));
    if (i > 0) edges.push(mkEdge([`svc-${Math.floor((i - 1) / 3)}`, `svc-${i}`, 1 + (i % 5), err]));
    if (i > 10 && i % 4 === 0) edges.push(mkEdge([`svc-${i}`, `svc-${(i * 13) % i}`, 0.5, 0]));
  }
  return { at: new Date().toISOString(), window: '1m', view: 'service', nodes, edges, coverage: { services: n, meshed_services: n, service_fraction: 1, request_fraction: 1, observe_services: n, enforce_services: 0, edges: edges.length, edges_both_sides: edges.length, unmeshed_services: [] } };
}

// Traces in Jaeger JSON.
function hex(n, len) {
  return n.toString(16).padStart(len, '0').slice(-len);
}
export function demoTraces(now = Date.now()) {
  const traces = [];
  for (let i = 0; i < 24; i++) {
    const tid = hex(0xabc000 + i, 32);
    const start = (now - (i + 1) * 20000) * 1000;
    const failed = i % 6 === 1;
    const slow = i % 5 === 2;
    let sid = 1;
    const spans = [];
    const processes = {};
    const proc = (svc) => {
      const k = 'p' + svc;
      processes[k] = { serviceName: svc, tags: [{ key: 'service.version', type: 'string', value: 'v1' }, { key: 'meshscope.proxy', type: 'bool', value: true }] };
      return k;
    };
    const add = (svc, op, parent, off, dur, kind, err, extraTags = []) => {
      const id = hex(i * 1000 + sid++, 16);
      const tags = [{ key: 'span.kind', type: 'string', value: kind }, { key: 'http.request.method', type: 'string', value: 'GET' }, ...extraTags];
      if (err) tags.push({ key: 'error', type: 'bool', value: true }, { key: 'otel.status_code', type: 'string', value: 'ERROR' }, { key: 'http.response.status_code', type: 'int64', value: 500 });
      spans.push({ traceID: tid, spanID: id, operationName: op, references: parent ? [{ refType: 'CHILD_OF', traceID: tid, spanID: parent }] : [], startTime: start + off, duration: dur, tags, logs: err ? [{ timestamp: start + off + dur - 10, fields: [{ key: 'event', type: 'string', value: 'exception' }, { key: 'exception.message', type: 'string', value: 'payment declined upstream' }] }] : [], processID: proc(svc), warnings: null });
      return id;
    };
    // The oldest trace is the slowest: only a sort over the whole range
    // (not over the newest 20) puts it first.
    const payDur = i === 23 ? 1900000 : slow ? 650000 : 30000;
    const total = 60000 + payDur;
    // Proxy client spans name their destination (mesh.destination.service);
    // the others leave the peer to their server child.
    const dst = (svc) => [{ key: 'mesh.destination.service', type: 'string', value: svc }];
    const root = add('web', 'GET /', null, 0, total, 'server', failed, [{ key: 'mesh.source.service', type: 'string', value: 'unknown' }]);
    const c1 = add('web', 'GET /api/items', root, 1000, 8000, 'client', false, dst('catalog'));
    const s1 = add('catalog', 'GET /api/items', c1, 1500, 7000, 'server');
    const c2 = add('catalog', 'GET /stock/{id}', s1, 2000, 4000, 'client');
    add('inventory', 'GET /stock/{id}', c2, 2300, 3500, 'server', false, [{ key: 'service.version', type: 'string', value: i % 2 ? 'v2' : 'v1' }]);
    const c3 = add('web', 'GET /cart', root, 10000, 9000, 'client', false, dst('cart'));
    const s3 = add('cart', 'GET /cart', c3, 10300, 8500, 'server');
    const c4 = add('cart', 'GET /price', s3, 11000, 3000, 'client', false, dst('pricing'));
    add('pricing', 'GET /price', c4, 11200, 2500, 'server');
    add('web', 'GET /reviews', root, 19000, 800, 'client', false, dst('reviews')); // unmeshed: no server span
    const c5 = add('web', 'POST /checkout', root, 20000, payDur + 30000, 'client', failed, dst('checkout'));
    const s5 = add('checkout', 'POST /checkout', c5, 20300, payDur + 29000, 'server', failed);
    const c6 = add('checkout', 'POST /charge', s5, 22000, payDur, 'client', failed);
    add('payments', 'POST /charge', c6, 22300, payDur - 600, 'server', failed);
    traces.push({ traceID: tid, spans, processes, warnings: null });
  }
  return traces;
}

export function bigTrace(n = 5000, now = Date.now()) {
  const tid = 'b'.repeat(32);
  const start = (now - 60000) * 1000;
  const spans = [];
  const processes = {};
  for (let s = 0; s < 20; s++) processes['p' + s] = { serviceName: `svc-${s}`, tags: [] };
  for (let i = 0; i < n; i++) {
    const parent = i === 0 ? null : Math.floor((i - 1) / 4);
    const depth = Math.floor(Math.log(3 * i + 1) / Math.log(4));
    spans.push({ traceID: tid, spanID: hex(i + 1, 16), operationName: `op-${i % 37}`, references: parent === null ? [] : [{ refType: 'CHILD_OF', traceID: tid, spanID: hex(parent + 1, 16) }],
      startTime: start + depth * 1000 + (i % 4) * 200, duration: Math.max(50, 2000000 / (depth + 1) - (i % 4) * 100), tags: [{ key: 'span.kind', type: 'string', value: 'server' }], logs: [], processID: 'p' + (i % 20) });
  }
  return { traceID: tid, spans, processes, warnings: null };
}

// nativeSummary is a trace as GET /api/mesh/traces lists it.
export function nativeSummary(t) {
  const ids = new Set(t.spans.map((s) => s.spanID));
  let start = Infinity, end = -Infinity, root = null, errors = 0;
  const svcs = new Set();
  for (const s of t.spans) {
    start = Math.min(start, s.startTime);
    end = Math.max(end, s.startTime + s.duration);
    const p = s.references.length ? s.references[0].spanID : null;
    if ((!p || !ids.has(p)) && (!root || s.startTime < root.startTime)) root = s;
    if (s.tags.some((x) => x.key === 'error' && x.value === true)) errors++;
    svcs.add(t.processes[s.processID].serviceName);
  }
  return {
    trace_id: t.traceID, root_service: t.processes[root.processID].serviceName, root_operation: root.operationName,
    start: new Date(start / 1000).toISOString(), duration_ms: (end - start) / 1000, span_count: t.spans.length, error_count: errors, services: [...svcs].sort(),
  };
}

// spanOf says whether span s is one of service svc's: its own, or a client
// span calling svc (unmeshed and virtual services are searchable as peers).
function spanOf(t, s, svc) {
  if (t.processes[s.processID].serviceName === svc) return true;
  return s.tags.some((x) => x.key === 'span.kind' && x.value === 'client') && s.tags.some((x) => (x.key === 'mesh.destination.service' || x.key === 'peer.service') && x.value === svc);
}

function matchesTags(trace, tags) {
  return Object.entries(tags).every(([k, v]) => trace.spans.some((s) => s.tags.some((t) => t.key === k && String(t.value) === String(v))));
}
function parseDur(s) {
  const m = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)$/.exec(s || '');
  if (!m) return null;
  return parseFloat(m[1]) * { us: 1, 'µs': 1, ms: 1000, s: 1e6, m: 6e7, h: 3.6e9 }[m[2]];
}

// wsAccept completes a WebSocket handshake and returns a send(text) function.
function wsAccept(req, socket) {
  const key = req.headers['sec-websocket-key'];
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  socket.on('data', (buf) => {
    if ((buf[0] & 0x0f) === 0x8) socket.end(Buffer.from([0x88, 0]));
  });
  socket.on('error', () => {});
  return (text) => {
    if (socket.destroyed) return false;
    const payload = Buffer.from(text);
    let head;
    if (payload.length < 126) head = Buffer.from([0x81, payload.length]);
    else if (payload.length < 65536) {
      head = Buffer.alloc(4);
      head[0] = 0x81; head[1] = 126; head.writeUInt16BE(payload.length, 2);
    } else {
      head = Buffer.alloc(10);
      head[0] = 0x81; head[1] = 127; head.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    socket.write(Buffer.concat([head, payload]));
    return true;
  };
}

// startFixtureServer listens on 127.0.0.1:port (0 = free port). Options:
// streamInterval (ms between diffs), addNodeAfter (diff number that adds the
// "recommendations" node), synthetic (node count: serve syntheticGraph).
// fixtureAudit answers GET /api/mesh/v1/audit (control/audit Page), newest first.
export const fixtureAudit = [
  { seq: 3, time: '2026-12-05T18:40:00Z', who: 'ci', role: 'operator', auth: 'token', from: '10.0.4.7', action: 'rollback', targets: ['Route/inventory-split'], version: 3, outcome: 'ok',
    diff: '# update Route/inventory-split\n  kind: Route\n-         weight: 80\n+         weight: 90\n', detail: { rollback_to: '1' } },
  { seq: 2, time: '2026-12-05T18:35:00Z', who: 'alice', role: 'operator', auth: 'session', from: '10.0.4.9', action: 'apply', targets: ['Route/inventory-split'], version: 2, outcome: 'ok',
    diff: '# update Route/inventory-split\n  kind: Route\n-         weight: 90\n+         weight: 80\n' },
  { seq: 1, time: '2026-12-05T18:30:00Z', who: 'ci', role: 'operator', auth: 'token', from: '10.0.4.7', action: 'apply', targets: ['Route/inventory-split'], version: 1, outcome: 'ok',
    diff: '# create Route/inventory-split\n+ kind: Route\n+ name: inventory-split\n' },
];

// guardFixture holds two guards in the wire shapes of control/guard (View,
// Event): inventory-break (enforce) acting on inventory since a page burn,
// and payments-shed (dry-run) triggered on payments-availability, with
// their events newest first. op() applies an operator's operation as the
// controller does (the states come from here, never from the UI).
export function guardFixture(at = new Date()) {
  const t = (s) => new Date(at.getTime() - s * 1000).toISOString();
  let seq = 0;
  const events = [];
  const emit = (ago, e) => events.unshift({ seq: ++seq, time: t(ago), ...e });
  const cond = (slo, service, burn) => ({ alert: 'SLOErrorBudgetBurn', labels: { alertname: 'SLOErrorBudgetBurn', slo, service, severity: 'page' }, value: burn.short / 100, active_at: t(200), burn_rates: { '5m': burn.short, '1h': burn.long } });
  const changes = (kind, name, service) => [{ op: 'create', kind, name, after: { kind, name, service } }];
  const guards = {
    'inventory-break': { name: 'inventory-break', service: 'inventory', mode: 'enforce', state: 'acting', when: 'SLO inventory-availability burns at page level', slo: 'inventory-availability',
      then: ['break (5% probes)'], action: { started: t(120), dry_run: false, summary: 'open the breaker on inventory for its callers (503, 5% probes pass)', version: 4, changes: changes('Resilience', 'guard-inventory-break', 'inventory') } },
    'payments-shed': { name: 'payments-shed', service: 'payments', mode: 'dry-run', state: 'triggered-dry-run', when: 'SLO payments-availability burns at page level', slo: 'payments-availability',
      then: ['shed 30%'], action: { started: t(90), dry_run: true, summary: 'shed payments inbound to 70% (1.4 rps at each of 1 instances)', changes: changes('Resilience', 'guard-payments-shed', 'payments') } },
  };
  emit(120, { guard: 'inventory-break', service: 'inventory', kind: 'acted', mode: 'enforce', condition: cond('inventory-availability', 'inventory', { short: 28.4, long: 16.2 }), summary: guards['inventory-break'].action.summary, changes: guards['inventory-break'].action.changes, version: 4, who: 'guard' });
  emit(90, { guard: 'payments-shed', service: 'payments', kind: 'would-act', mode: 'dry-run', condition: cond('payments-availability', 'payments', { short: 38, long: 35 }), summary: 'would have acted: ' + guards['payments-shed'].action.summary, changes: guards['payments-shed'].action.changes, who: 'guard' });
  const view = (g) => ({ ...g, last_event: events.find((e) => e.guard === g.name) });
  return {
    list: (service) => Object.values(guards).filter((g) => !service || g.service === service).map(view),
    events: (guard, service, limit) => events.filter((e) => (!guard || e.guard === guard) && (!service || e.service === service)).slice(0, limit),
    // op returns [status, body] like POST /api/mesh/v1/guards/{name}/{op}.
    op(name, op, who) {
      const g = guards[name];
      if (!g) return [404, { error: `guard not found: "${name}"` }];
      const base = { guard: name, service: g.service, mode: g.mode, who };
      switch (op) {
        case 'pause':
          if (g.state === 'paused') return [400, { error: `guard "${name}" is already paused` }];
          g.resumeTo = g.state;
          g.state = 'paused';
          emit(0, { ...base, kind: 'paused', summary: 'paused: no automatic action or revert until resumed' });
          break;
        case 'resume':
          if (g.state !== 'paused') return [400, { error: `guard "${name}" is not paused` }];
          g.state = g.resumeTo;
          emit(0, { ...base, kind: 'resumed', summary: 'resumed' });
          break;
        case 'revert':
          if (!g.action) return [400, { error: `reverting guard "${name}": no active action to revert` }];
          emit(0, { ...base, kind: g.action.dry_run ? 'would-revert' : 'reverted', summary: (g.action.dry_run ? 'would have reverted: ' : 'reverted: ') + g.action.summary, ...(g.action.dry_run ? {} : { version: 5 }) });
          g.action = undefined;
          g.state = 'cooling-down';
          g.cooldown_until = new Date(at.getTime() + 300000).toISOString();
          break;
        case 'promote':
          if (g.mode === 'enforce') return [400, { error: `guard "${name}" is already in enforce mode` }];
          g.mode = 'enforce';
          emit(0, { ...base, mode: 'enforce', kind: 'promoted', summary: 'promoted from dry-run to enforce', version: 6 });
          break;
        default:
          return [400, { error: `"${op}" is not an operation (want pause, resume, revert or promote)` }];
      }
      return [200, { guard: view(g), event: events[0] }];
    },
  };
}

// auth: null = the server runs without --auth-file; {role} = with one, and
// a login (any name, password "secret") signs in with that role.
export function startFixtureServer({ port = 0, streamInterval = 1000, addNodeAfter = 3, synthetic = 0, auth = null } = {}) {
  let signedIn = null;
  const traces = demoTraces();
  const big = bigTrace();
  const byID = new Map([...traces, big].map((t) => [t.traceID, t]));
  const stats = { policyGets: 0, streams: 0, graphGets: 0, graphURLs: [], tableURLs: [], traceSearches: [], queries: [] };
  const json = (res, code, body) => {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  let rolloutPhase = 'progressing'; // POST pause/resume changes it
  const guards = guardFixture();
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const p = u.pathname;
    if (p === '/api/auth/v1/whoami') {
      if (!auth) return json(res, 200, { enabled: false, authenticated: true, identity: { name: 'anonymous', role: 'admin', method: 'none' }, can: ['read', 'write', 'admin', 'ingest', 'stream'] });
      if (!signedIn) return json(res, 200, { enabled: true, authenticated: false, identity: { name: '', role: '', method: '' }, can: [] });
      return json(res, 200, { enabled: true, authenticated: true, identity: signedIn, can: signedIn.role === 'viewer' ? ['read'] : ['read', 'write', 'ingest', 'stream'] });
    }
    if (p === '/api/auth/v1/login' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const b = JSON.parse(body || '{}');
        if (b.password !== 'secret') return json(res, 401, { error: 'wrong name or password' });
        signedIn = { name: b.name, role: auth.role, method: 'session' };
        res.setHeader('Set-Cookie', ['meshscope_session=s1; Path=/; HttpOnly; SameSite=Strict', 'meshscope_csrf=c1; Path=/; SameSite=Strict']);
        json(res, 200, { identity: signedIn, csrf: 'c1' });
      });
      return;
    }
    if (p === '/api/auth/v1/logout') {
      signedIn = null;
      return json(res, 200, {});
    }
    if (auth && !signedIn && p.startsWith('/api/')) return json(res, 401, { error: 'authentication required' });
    if (p === '/api/mesh/v1/rollback' && req.method === 'POST') {
      stats.rollbacks = stats.rollbacks || [];
      stats.rollbacks.push({ version: u.searchParams.get('version'), csrf: req.headers['x-csrf-token'] || '' });
      if (auth && req.headers['x-csrf-token'] !== 'c1') return json(res, 403, { error: 'missing or wrong X-CSRF-Token header' });
      return json(res, 200, { version: 4, changed: true, dry_run: false, changes: [] });
    }
    if (p === '/api/mesh/v1/audit') {
      const before = Number(u.searchParams.get('before') || 0), limit = Number(u.searchParams.get('limit') || 100);
      const who = u.searchParams.get('who');
      const all = fixtureAudit.filter((e) => (!before || e.seq < before) && (!who || e.who === who));
      const entries = all.slice(0, limit);
      return json(res, 200, { entries, next_before: all.length > limit ? entries[entries.length - 1].seq : undefined });
    }
    if (p === '/api/mesh/graph') {
      stats.graphGets++;
      stats.graphURLs.push(req.url);
      const atp = u.searchParams.get('at');
      const at = !atp ? new Date() : /^\d+(\.\d+)?$/.test(atp) ? new Date(Number(atp) * 1000) : new Date(atp);
      if (isNaN(at)) return json(res, 400, { error: 'bad at' });
      return json(res, 200, synthetic ? syntheticGraph(synthetic) : demoGraph({ view: u.searchParams.get('view') || 'service', window: u.searchParams.get('window') || '1m', at }));
    }
    if (p === '/api/v1/query_range') {
      const q = u.searchParams.get('query');
      stats.queries.push(q);
      const start = Number(u.searchParams.get('start')), end = Number(u.searchParams.get('end')), step = Number(u.searchParams.get('step'));
      const base = q.includes('histogram_quantile') ? 0.02 : q.includes('failure') ? 2 : 10;
      const values = [];
      for (let t = start; t <= end; t += step) values.push([t, String(base * (1 + 0.2 * Math.sin(t / 30)))]);
      return json(res, 200, { status: 'success', data: { resultType: 'matrix', result: [{ metric: {}, values }] } });
    }
    if (p === '/api/v1/query') {
      const q = u.searchParams.get('query');
      stats.queries.push(q);
      const t = Date.now() / 1000;
      let result = [{ metric: {}, value: [t, '1'] }];
      const dm = /mesh_policy_decisions_total\{service="([^"]*)"\}/.exec(q);
      if (dm) result = (fixtureDecisions[dm[1]] || []).map(([kind, policy, decision, enforced, n]) => ({ metric: { policy_kind: kind, policy, decision, enforced }, value: [t, String(n)] }));
      if (q.includes('by (route')) result = ['/api/items/{id}', '/api/items', 'unmatched'].map((r, i) => ({ metric: { route: r }, value: [t, String(q.includes('histogram') ? 0.01 * (i + 1) : q.includes('failure') ? 0.1 * i : 8 - 3 * i)] }));
      if (q.includes('by (destination_version')) result = ['v1', 'v2'].map((v, i) => ({ metric: { destination_version: v }, value: [t, String(q.includes('histogram') ? 0.01 : q.includes('failure') ? 0 : 6 - i)] }));
      return json(res, 200, { status: 'success', data: { resultType: 'vector', result } });
    }
    if (p === '/api/mesh/v1/policies') {
      stats.policyGets++;
      const svc = u.searchParams.get('service');
      const policies = fixturePolicies.filter((d) => !svc || d.service === svc);
      return json(res, 200, { version: 3, policies, sources: Object.fromEntries(policies.map((d) => [`${d.kind}/${d.name}`, 'api'])) });
    }
    if (p === '/api/mesh/v1/endpoints') {
      const svc = u.searchParams.get('service');
      const endpoints = fixtureEndpoints().filter((e) => !svc || e.service === svc);
      return json(res, 200, { policy_version: 3, endpoints, proxies: [] });
    }
    if (p === '/api/mesh/services') {
      const g = demoGraph({ window: u.searchParams.get('window') || '1m' });
      const services = g.nodes.filter((n) => n.kind === 'service' || n.kind === 'unmeshed').map((n) => ({
        service: n.service, kind: n.kind === 'unmeshed' ? 'unmeshed' : 'service', mode: n.mode, meshed: n.kind === 'service', rps: n.rps, error_rate: n.error_rate, success_rate: 1 - n.error_rate, p50_ms: n.p50_ms, p95_ms: n.p95_ms, p99_ms: n.p99_ms,
      }));
      return json(res, 200, { at: g.at, window: g.window, covered_seconds: g.covered_seconds, services });
    }
    if (p === '/api/mesh/routes' || p === '/api/mesh/versions' || p === '/api/mesh/edges') {
      stats.tableURLs.push(req.url);
      const atp = u.searchParams.get('at');
      const at = !atp ? new Date() : /^\d+(\.\d+)?$/.test(atp) ? new Date(Number(atp) * 1000) : new Date(atp);
      if (isNaN(at)) return json(res, 400, { error: 'invalid parameter "at"' });
      const window = u.searchParams.get('window') || '1m';
      const body = { at: at.toISOString(), window, covered_seconds: Math.min(windowSecs(window), fixtureDataSeconds) };
      const f = (k) => u.searchParams.get(k) || '';
      Object.assign(body, p === '/api/mesh/routes' ? { routes: fixtureRoutes(f('service'), f('source'), f('version')) }
        : p === '/api/mesh/versions' ? { versions: fixtureVersions(f('service')) } : { edges: fixtureEdges(f('source'), f('destination')) });
      return json(res, 200, body);
    }
    if (p === '/api/mesh/traces') {
      stats.traceSearches.push(req.url);
      const svc = u.searchParams.get('service');
      const sort = u.searchParams.get('sort') || 'newest';
      if (!['newest', 'longest', 'errors'].includes(sort)) return json(res, 400, { error: `invalid parameter "sort": want newest, longest or errors, got "${sort}"` });
      const op = u.searchParams.get('operation');
      const status = u.searchParams.get('status');
      const attrs = u.searchParams.getAll('attr').map((kv) => kv.split('='));
      const minD = parseDur(u.searchParams.get('min_duration')), maxD = parseDur(u.searchParams.get('max_duration'));
      const startS = Number(u.searchParams.get('start') || 0), endS = Number(u.searchParams.get('end') || Infinity);
      const hits = traces.filter((t) => t.spans.some((s) => (!svc || spanOf(t, s, svc)) && (!op || s.operationName === op)
        && (status !== 'error' || s.tags.some((x) => x.key === 'error' && x.value === true))
        && attrs.every(([k, v]) => s.tags.some((x) => x.key === k && String(x.value) === v))
        && (minD === null || s.duration >= minD) && (maxD === null || s.duration <= maxD)
        && s.startTime / 1e6 >= startS && s.startTime / 1e6 <= endS)).map(nativeSummary);
      const by = { newest: (a, b) => (a.start < b.start ? 1 : -1), longest: (a, b) => b.duration_ms - a.duration_ms, errors: (a, b) => b.error_count - a.error_count || (a.start < b.start ? 1 : -1) }[sort];
      return json(res, 200, { traces: hits.sort(by).slice(0, Number(u.searchParams.get('limit') || 20)) });
    }
    if (p === '/jaeger/api/services') return json(res, 200, { data: ['web', 'catalog', 'cart', 'checkout', 'pricing', 'inventory', 'payments'], total: 7 });
    let m;
    if ((m = /^\/jaeger\/api\/services\/([^/]+)\/operations$/.exec(p))) {
      const svc = decodeURIComponent(m[1]);
      const ops = new Set();
      for (const t of traces) for (const s of t.spans) if (t.processes[s.processID].serviceName === svc) ops.add(s.operationName);
      return json(res, 200, { data: [...ops], total: ops.size });
    }
    if (p === '/jaeger/api/traces') {
      const svc = u.searchParams.get('service');
      if (!svc) return json(res, 400, { data: null, errors: [{ code: 400, msg: 'parameter service is required' }] });
      const tags = u.searchParams.get('tags') ? JSON.parse(u.searchParams.get('tags')) : {};
      const minD = parseDur(u.searchParams.get('minDuration')), maxD = parseDur(u.searchParams.get('maxDuration'));
      const op = u.searchParams.get('operation');
      const out = traces.filter((t) => {
        const mine = t.spans.filter((s) => t.processes[s.processID].serviceName === svc && (!op || s.operationName === op));
        if (!mine.length) return false;
        if (!matchesTags(t, tags)) return false;
        const d = Math.max(...mine.map((s) => s.duration));
        if (minD !== null && d < minD) return false;
        if (maxD !== null && d > maxD) return false;
        return true;
      }).slice(0, Number(u.searchParams.get('limit') || 20));
      return json(res, 200, { data: out, total: out.length, limit: 0, offset: 0, errors: null });
    }
    if ((m = /^\/jaeger\/api\/traces\/([0-9a-f]+)$/.exec(p))) {
      const t = byID.get(m[1]);
      if (!t) return json(res, 404, { data: null, errors: [{ code: 404, msg: 'trace not found' }] });
      return json(res, 200, { data: [t], total: 1 });
    }
    if (p === '/api/mesh/v1/rollouts') return json(res, 200, { rollouts: [rolloutSummary(demoRollout(rolloutPhase))] });
    if (p === '/api/mesh/v1/rollouts/inventory-v2') return json(res, 200, demoRollout(rolloutPhase));
    if ((m = /^\/api\/mesh\/v1\/rollouts\/inventory-v2\/(pause|resume)$/.exec(p)) && req.method === 'POST') {
      rolloutPhase = m[1] === 'pause' ? 'paused' : 'progressing';
      return json(res, 200, rolloutSummary(demoRollout(rolloutPhase)));
    }
    if (p === '/api/mesh/v1/guards') return json(res, 200, { guards: guards.list(u.searchParams.get('service')) });
    if (p === '/api/mesh/v1/events') return json(res, 200, { events: guards.events(u.searchParams.get('guard'), u.searchParams.get('service'), Number(u.searchParams.get('limit') || 100)) });
    if ((m = /^\/api\/mesh\/v1\/guards\/([^/]+)\/([^/]+)$/.exec(p)) && req.method === 'POST') {
      stats.guardOps = stats.guardOps || [];
      stats.guardOps.push({ guard: decodeURIComponent(m[1]), op: m[2], csrf: req.headers['x-csrf-token'] || '' });
      if (auth && req.headers['x-csrf-token'] !== 'c1') return json(res, 403, { error: 'missing or wrong X-CSRF-Token header' });
      if (auth && signedIn.role === 'viewer') return json(res, 403, { error: 'role viewer may not write' });
      return json(res, ...guards.op(decodeURIComponent(m[1]), m[2], signedIn ? signedIn.name : 'api 127.0.0.1'));
    }
    if (p === '/api/mesh/v1/slos') return json(res, 200, { version: 3, slos: demoSLOs() });
    if (p.startsWith('/api/mesh/v1/slos/')) {
      const s = demoSLOs().find((x) => x.name === decodeURIComponent(p.slice('/api/mesh/v1/slos/'.length)));
      return s ? json(res, 200, s) : json(res, 404, { error: 'slo ' + p.slice(18) + ' not found' });
    }
    if (p.startsWith('/api/') || p.startsWith('/jaeger/')) return json(res, 404, { error: 'no API at ' + p });
    // Static files like ui.Handler.
    const name = p.replace(/^\/+/, '');
    const file = join(distDir, name);
    const types = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.html': 'text/html; charset=utf-8' };
    const headers = { 'Content-Security-Policy': CSP };
    if (name && extname(name) && name !== 'index.html') {
      if (!existsSync(file)) {
        res.writeHead(404, headers);
        return res.end('404');
      }
      res.writeHead(200, { ...headers, 'Content-Type': types[extname(name)] || 'application/octet-stream' });
      return res.end(readFileSync(file));
    }
    res.writeHead(200, { ...headers, 'Content-Type': types['.html'], 'Cache-Control': 'no-cache' });
    res.end(readFileSync(join(distDir, 'index.html')));
  });
  const upgraded = new Set();
  server.on('upgrade', (req, socket) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    const u = new URL(req.url, 'http://x');
    if (u.pathname !== '/api/mesh/graph/stream') return socket.destroy();
    stats.streams++;
    const send = wsAccept(req, socket);
    const view = u.searchParams.get('view') || 'service';
    const window = u.searchParams.get('window') || '1m';
    let seq = 1, tick = 0;
    const gen = (t) => (synthetic ? syntheticGraph(synthetic, t) : demoGraph({ view, window, tick: t, extra: t >= addNodeAfter }));
    let prev = gen(0);
    send(JSON.stringify({ type: 'snapshot', seq, graph: prev }));
    const timer = setInterval(() => {
      tick++;
      const g = gen(tick);
      const pn = new Map(prev.nodes.map((n) => [n.id, JSON.stringify(n)]));
      const pe = new Map(prev.edges.map((e) => [e.id, JSON.stringify(e)]));
      const gn = new Set(g.nodes.map((n) => n.id)), ge = new Set(g.edges.map((e) => e.id));
      const msg = {
        type: 'diff', seq: ++seq, at: new Date().toISOString(),
        upserted_nodes: g.nodes.filter((n) => pn.get(n.id) !== JSON.stringify(n)),
        removed_nodes: [...pn.keys()].filter((id) => !gn.has(id)),
        upserted_edges: g.edges.filter((e) => pe.get(e.id) !== JSON.stringify(e)),
        removed_edges: [...pe.keys()].filter((id) => !ge.has(id)),
        coverage: g.coverage,
      };
      prev = g;
      if (!send(JSON.stringify(msg))) clearInterval(timer);
    }, streamInterval);
    socket.on('close', () => clearInterval(timer));
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}`;
      resolve({
        url, stats, traces,
        close: () => new Promise((r) => {
          for (const s of upgraded) s.destroy();
          server.closeAllConnections();
          server.close(() => r());
        }),
      });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = await startFixtureServer({ port: Number(process.argv[2] || 0), synthetic: Number(process.env.SYNTHETIC || 0) });
  console.log('fixture server at', s.url);
}
