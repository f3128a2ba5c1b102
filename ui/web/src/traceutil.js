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
// waterfall: [{span, depth, service, hasChildren}]. Spans whose parent is
// missing are treated as roots.
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
    rows.push({ span: s, depth, service: serviceOf(trace, s), hasChildren: kids.length > 0 });
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
