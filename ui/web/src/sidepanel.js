// Side panel of the topology page: details of the selected node or edge.
import { html } from './html.js';
import { useEffect, useState } from 'preact/hooks';
import { RangeChart, QueryBox } from './charts.js';
import { selector, redQueries } from './promql.js';
import { panelTables, sortRows, tableURL } from './redtables.js';
import { getJSON, fmtRate, fmtPct, fmtMs, fmtTime, windowToSeconds, rateRange } from './api.js';
import { health, kindInfo } from './graphmodel.js';
import { onLinkClick } from './router.js';
import { PolicySection } from './policies.js';
import { GuardsSection } from './guards.js';
import { EdgeTLS, mtlsShare } from './mtls.js';

// FigureTable prints rows of RED figures with the one formatter of each
// kind (fmtRate, fmtPct, fmtMs), as the header does.
function FigureTable({ keyLabel, rows }) {
  return html`<table class="data compact"><thead><tr><th scope="col">${keyLabel}</th><th scope="col" class="num">rps</th><th scope="col" class="num">errors</th><th scope="col" class="num">p99</th><th scope="col" class="num">mTLS</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr key=${r.key} data-key=${r.key}><td>${r.key}</td><td class="num">${fmtRate(r.rps)}</td><td class="num">${fmtPct(r.error_rate)}</td><td class="num">${fmtMs(r.p99_ms)}</td><td class="num">${fmtPct(mtlsShare(r))}</td></tr>`)}</tbody></table>`;
}

// APITable is one table of the native RED API at the graph's time (see
// redtables.js). Rows stay on screen while the next time's rows load.
function APITable({ t, window, at, testid }) {
  const [state, setState] = useState({ url: '', rows: null, error: null });
  const url = t.path ? tableURL(t, window, at) : '';
  useEffect(() => {
    if (!url) return undefined;
    const ac = new AbortController();
    getJSON(url, { signal: ac.signal })
      .then((body) => setState({ url, rows: sortRows(t.rowsOf(body)), error: null }))
      .catch((e) => e.name !== 'AbortError' && setState({ url, rows: null, error: e.message }));
    return () => ac.abort();
  }, [url]);
  const { rows, error } = state;
  return html`<div class="panel-section" data-testid=${testid} data-url=${state.url} data-loading=${state.url === url ? 'false' : 'true'}>
    <h3>${t.title}</h3>
    ${t.note ? html`<p class="muted">${t.note}</p>` : error ? html`<p class="error" role="alert">${error}</p>` : rows === null ? html`<p class="muted">loading…</p>` : rows.length === 0 ? html`<p class="muted">no requests in this window</p>` : html`<${FigureTable} keyLabel=${t.keyLabel} rows=${rows} />`}
    ${url ? html`<${QueryBox} queries=${[url]} label=${t.title} kind="API request" />` : ''}
  </div>`;
}

// EdgeTable lists the graph's own edges of a node (callers or callees).
function EdgeTable({ title, testid, keyLabel, rows }) {
  return html`<div class="panel-section" data-testid=${testid}>
    <h3>${title}</h3>
    ${rows.length === 0 ? html`<p class="muted">none in this window</p>` : html`<${FigureTable} keyLabel=${keyLabel} rows=${sortRows(rows)} />`}
  </div>`;
}

function TraceList({ title, service, extra, window, at, testid }) {
  const [traces, setTraces] = useState(null);
  const [error, setError] = useState(null);
  const key = JSON.stringify([service, extra, window, at]);
  useEffect(() => {
    const ac = new AbortController();
    const end = at || Math.floor(Date.now() / 1000);
    const start = end - windowToSeconds(window);
    const q = new URLSearchParams({ service, limit: '10', start: String(start), end: String(end), ...extra });
    setTraces(null);
    setError(null);
    // The server sorts over the whole window before the limit.
    getJSON('/api/mesh/traces?' + q, { signal: ac.signal })
      .then((b) => setTraces(b.traces || []))
      .catch((e) => e.name !== 'AbortError' && setError(e.message));
    return () => ac.abort();
  }, [key]);
  return html`<div class="panel-section" data-testid=${testid}>
    <h3>${title}</h3>
    ${error ? html`<p class="error" role="alert">${error}</p>` : traces === null ? html`<p class="muted">loading…</p>` : traces.length === 0 ? html`<p class="muted">none in this window</p>` : html`
    <ul class="trace-mini">${traces.map((t) => html`<li key=${t.trace_id}><a href=${'/traces/' + t.trace_id} onClick=${onLinkClick}>
      ${t.root_service}: ${t.root_operation}</a> <span class="num">${fmtMs(t.duration_ms)}</span> ${t.error_count ? html`<span class="badge health-failing">✖ ${t.error_count} error${t.error_count > 1 ? 's' : ''}</span>` : ''}
      <span class="muted">${fmtTime(t.start)}</span></li>`)}</ul>`}
  </div>`;
}

export function SidePanel({ sel, graph, pol, window, view, at, onClose }) {
  const [kind, id] = [sel.slice(0, sel.indexOf(':')), sel.slice(sel.indexOf(':') + 1)];
  let subject, a, b;
  if (kind === 'node') {
    a = graph.nodes.get(id);
    subject = a;
  } else if (kind === 'edge') {
    subject = graph.edges.get(id);
    if (subject) {
      a = graph.nodes.get(subject.source);
      b = graph.nodes.get(subject.target);
    }
  }
  const close = html`<button type="button" class="close" onClick=${onClose} aria-label="Close details">✕</button>`;
  if (!subject || !a || (kind === 'edge' && !b)) {
    return html`<aside class="side-panel" aria-label="Details" data-testid="side-panel">${close}
      <h2>${id}</h2><p class="muted">${graph.nodes.size ? 'Not in the current graph (filtered out, or no traffic in this window).' : 'Loading…'}</p></aside>`;
  }
  const s = kind === 'node' ? selector('node', a) : selector('edge', a, b);
  const qs = redQueries(s, rateRange(windowToSeconds(window)));
  const h = health(subject.health);
  const userNode = kind === 'node' && a.kind === 'user';
  const traceService = userNode ? null : kind === 'node' ? (a.kind === 'external' ? null : a.service || a.id) : (b.kind === 'external' ? a.service || a.id : b.service || b.id);
  // The policies of the node's service, or of an edge's callee.
  const dst = kind === 'node' ? a : b;
  const policyService = dst.kind === 'service' ? dst.service || dst.id : null;
  const minDur = `${Math.max(1, Math.round(subject.p95_ms || 1))}ms`;
  const title = kind === 'node' ? id : `${subject.source} → ${subject.target}`;
  return html`<aside class="side-panel" aria-label=${'Details of ' + title} data-testid="side-panel">
    ${close}
    <h2>${title}</h2>
    <p class="facts">
      <span class=${'badge health-' + subject.health}><span aria-hidden="true">${h.glyph}</span> ${h.word}</span>
      ${kind === 'node' ? html` <span class="tag">${(kindInfo[a.kind] || {}).label || a.kind}</span> <span class="tag">mode: ${a.mode}</span>${a.group ? html` <span class="tag">group: ${a.group}</span>` : ''}` : html` <span class="tag">seen by: ${subject.seen_by}</span> <${EdgeTLS} e=${subject} />`}
      ${(subject.protocols || []).map((p) => html` <span class="tag">${p}</span>`)}
    </p>
    ${userNode ? html`<p class="muted">Callers outside the mesh: their outgoing requests.</p>` : ''}
    <dl class="stats">
      <div><dt>requests/s</dt><dd>${fmtRate(subject.rps)}</dd></div>
      <div><dt>errors</dt><dd>${fmtPct(subject.error_rate)}</dd></div>
      <div><dt>p50</dt><dd>${fmtMs(subject.p50_ms)}</dd></div>
      <div><dt>p95</dt><dd>${fmtMs(subject.p95_ms)}</dd></div>
      <div><dt>p99</dt><dd>${fmtMs(subject.p99_ms)}</dd></div>
    </dl>
    ${pol && policyService ? html`<${PolicySection} service=${policyService} pol=${pol} proxyMode=${a.mode} window=${window} at=${at} />` : ''}
    ${policyService ? html`<${GuardsSection} service=${policyService} />` : ''}
    <div class="charts">
      <${RangeChart} title="Request rate" unit="req/s" series=${qs.rate} window=${window} at=${at} testid="chart-rate" />
      <${RangeChart} title="Errors" unit="%" series=${qs.errors} window=${window} at=${at} testid="chart-errors" />
      <${RangeChart} title="Latency" unit="ms" series=${qs.latency} window=${window} at=${at} testid="chart-latency" />
    </div>
    ${panelTables(kind, a, b, graph).map((t) => html`<${APITable} key=${t.id + JSON.stringify(t.params || {})} t=${t} window=${window} at=${graph.at} testid=${t.id} />`)}
    ${kind === 'node' && !userNode ? html`
    <${EdgeTable} title="Callers" testid="callers" keyLabel="caller" rows=${[...graph.edges.values()].filter((e) => e.target === id).map((e) => ({ ...e, key: e.source }))} />
    <${EdgeTable} title="Callees" testid="callees" keyLabel="callee" rows=${[...graph.edges.values()].filter((e) => e.source === id).map((e) => ({ ...e, key: e.target }))} />` : ''}
    ${traceService ? html`
    <${TraceList} title=${`Slow traces (≥ ${minDur}, the p95)`} service=${traceService} extra=${{ min_duration: minDur, sort: 'longest' }} window=${window} at=${at} testid="slow-traces" />
    <${TraceList} title="Failed traces" service=${traceService} extra=${{ status: 'error', sort: 'newest' }} window=${window} at=${at} testid="failed-traces" />
    <p><a href=${'/traces?service=' + encodeURIComponent(traceService)} onClick=${onLinkClick}>Search traces of ${traceService} →</a></p>` : ''}
  </aside>`;
}
