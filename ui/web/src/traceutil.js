// Helpers over Jaeger-JSON traces ({traceID, spans[], processes{}}; times in
// microseconds).

export function tagValue(tags, key) {
  for (const t of tags || []) if (t.key === key) return t.value;
  return undefined;
}

export function spanIsError(s) {
  const e = tagValue(s.tags, 'error');
  if (e === true || e === 'true') return true;
  const st = tagValue(s.tags, 'otel.status_code');
  return st === 'ERROR';
}

export function parentOf(s) {
  for (const r of s.references || []) if (r.refType === 'CHILD_OF' && r.spanID) return r.spanID;
  for (const r of s.references || []) if (r.spanID) return r.spanID;
  return null;
}

export function serviceOf(trace, s) {
  const p = trace.processes && trace.processes[s.processID];
  return (p && p.serviceName) || (s.process && s.process.serviceName) || 'unknown';
}

// spanKind is the span's kind (client, server, internal, producer,
// consumer) or '' when the span does not say.
export function spanKind(s) {
  return String(tagValue(s.tags, 'span.kind') || '').toLowerCase();
}

const calling = new Set(['client', 'producer']);
const called = new Set(['server', 'consumer']);

// spanPeer is the other side of a call: for a client (producer) span the
// service it called (peer.service, the proxy's mesh.destination.service,
// else the service of its server child, else server.address); for a server
// (consumer) span its caller (mesh.source.service, else the service of its
// client parent). '' when unknown or not a call.
export function spanPeer(trace, s, kids, parent) {
  const kind = spanKind(s);
  if (calling.has(kind)) {
    const tagged = tagValue(s.tags, 'peer.service') || tagValue(s.tags, 'mesh.destination.service');
    if (tagged) return String(tagged);
    const child = (kids || []).find((k) => called.has(spanKind(k)));
    if (child) return serviceOf(trace, child);
    const addr = tagValue(s.tags, 'server.address');
    return addr ? String(addr) : '';
  }
  if (called.has(kind)) {
    const tagged = tagValue(s.tags, 'mesh.source.service');
    if (tagged) return String(tagged);
    if (parent && calling.has(spanKind(parent))) return serviceOf(trace, parent);
  }
  return '';
}

// summarize gives the list view of a trace.
export function summarize(trace) {
  const spans = trace.spans || [];
  const ids = new Set(spans.map((s) => s.spanID));
  let start = Infinity, end = -Infinity, root = null, errors = 0;
  const services = new Map();
  for (const s of spans) {
    start = Math.min(start, s.startTime);
    end = Math.max(end, s.startTime + s.duration);
    const p = parentOf(s);
    if ((!p || !ids.has(p)) && (!root || s.startTime < root.startTime)) root = s;
    if (spanIsError(s)) errors++;
    const svc = serviceOf(trace, s);
    services.set(svc, (services.get(svc) || 0) + 1);
  }
  return {
    traceID: trace.traceID,
    rootService: root ? serviceOf(trace, root) : '?',
    rootOperation: root ? root.operationName : '?',
    start: spans.length ? start : 0,
    duration: spans.length ? end - start : 0,
    spanCount: spans.length,
    errors,
    services,
  };
}

// buildRows orders spans depth-first (children by start time) for the
// waterfall: [{span, depth, service, hasChildren, kind, peer}]. Spans whose
// parent is missing are treated as roots.
export function buildRows(trace) {
  const spans = trace.spans || [];
  const byID = new Map(spans.map((s) => [s.spanID, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    const p = parentOf(s);
    if (p && byID.has(p) && p !== s.spanID) {
      if (!children.has(p)) children.set(p, []);
      children.get(p).push(s);
    } else roots.push(s);
  }
  const cmp = (a, b) => a.startTime - b.startTime || (a.spanID < b.spanID ? -1 : 1);
  roots.sort(cmp);
  for (const l of children.values()) l.sort(cmp);
  const rows = [];
  const seen = new Set();
  const stack = roots.slice().reverse().map((s) => [s, 0]);
  while (stack.length) {
    const [s, depth] = stack.pop();
    if (seen.has(s.spanID)) continue;
    seen.add(s.spanID);
    const kids = children.get(s.spanID) || [];
    const p = parentOf(s);
    rows.push({ span: s, depth, service: serviceOf(trace, s), hasChildren: kids.length > 0, kind: spanKind(s), peer: spanPeer(trace, s, kids, p && byID.get(p)) });
    for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
  }
  return { rows, children };
}

// criticalPath returns the set of span ids on the critical path: from the
// root, walk back from its end through the last-finishing child that ends
// before the current point, then continue before that child's start
// (Jaeger's definition: the spans whose work the trace waited on).
export function criticalPath(trace) {
  const { rows, children } = buildRows(trace);
  const onPath = new Set();
  const visit = (span, limit) => {
    onPath.add(span.spanID);
    const kids = (children.get(span.spanID) || []).slice()
      .sort((a, b) => (b.startTime + b.duration) - (a.startTime + a.duration));
    let t = Math.min(span.startTime + span.duration, limit);
    for (const k of kids) {
      const kend = k.startTime + k.duration;
      if (k.startTime >= t) continue; // started after the point we wait for
      visit(k, Math.min(kend, t));
      t = k.startTime;
      if (t <= span.startTime) break;
    }
  };
  const roots = rows.filter((r) => r.depth === 0).map((r) => r.span);
  // Iterative guard: deep traces recurse once per level, which is bounded by
  // the trace depth, not its size.
  for (const r of roots) visit(r, Infinity);
  return onPath;
}

// Lookbacks of the trace search (URL `lookback`), in seconds.
export const lookbacks = { '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };

// searchURL is the native search request of the search parameters p.
export function searchURL(p, tags, nowMs = Date.now()) {
  const end = p.end ? Number(p.end) : Math.floor(nowMs / 1000);
  const u = new URLSearchParams({ service: p.service, limit: p.limit, start: String(end - lookbacks[p.lookback]), end: String(end), sort: p.sort });
  if (p.operation) u.set('operation', p.operation);
  for (const [k, v] of Object.entries(tags)) if (k !== 'error') u.append('attr', `${k}=${v}`);
  if (tags.error === 'true') u.set('status', 'error');
  if (p.minDuration) u.set('min_duration', p.minDuration.replace('µs', 'us'));
  if (p.maxDuration) u.set('max_duration', p.maxDuration.replace('µs', 'us'));
  return '/api/mesh/traces?' + u;
}
