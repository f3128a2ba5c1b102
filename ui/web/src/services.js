// Services page: a sortable table of golden signals per service (like
// `linkerd viz stat`), from GET /api/mesh/graph: live (refreshed every
// 10 s), or replayed at `at` or over a range `from`..`to`.
import { html } from './html.js';
import { useEffect, useState } from 'preact/hooks';
import { getJSON, fmtRate, fmtPct, fmtMs, fmtTime, fmtSpan } from './api.js';
import { setQuery, onLinkClick } from './router.js';
import { HealthBadge } from './topology.js';
import { timeParams, apiTime, timeKey, TimeControls, CoverageNote } from './time.js';

const healthOrder = { failing: 3, degraded: 2, healthy: 1, no_data: 0 };
const columns = [
  { key: 'id', label: 'Service', get: (n) => n.id, text: true },
  { key: 'health', label: 'Health', get: (n) => healthOrder[n.health] || 0 },
  { key: 'kind', label: 'Kind', get: (n) => n.kind, text: true },
  { key: 'mode', label: 'Proxy', get: (n) => n.mode, text: true },
  { key: 'success', label: 'Success', get: (n) => 1 - (n.error_rate || 0), num: true },
  { key: 'rps', label: 'RPS', get: (n) => n.rps || 0, num: true },
  { key: 'p50', label: 'p50', get: (n) => n.p50_ms || 0, num: true },
  { key: 'p95', label: 'p95', get: (n) => n.p95_ms || 0, num: true },
  { key: 'p99', label: 'p99', get: (n) => n.p99_ms || 0, num: true },
];

export function ServicesPage({ query }) {
  const t = timeParams(query);
  const view = query.get('view') === 'version' ? 'version' : 'service';
  const sortKey = columns.some((c) => c.key === query.get('sort')) ? query.get('sort') : 'rps';
  const dir = query.get('dir') === 'asc' ? 'asc' : query.get('dir') === 'desc' ? 'desc' : (columns.find((c) => c.key === sortKey).text ? 'asc' : 'desc');
  const [graph, setGraph] = useState(null);
  const [error, setError] = useState(null);
  const [reload, setReload] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    getJSON('/api/mesh/graph?' + new URLSearchParams({ ...apiTime(t), view }), { signal: ac.signal })
      .then((g) => {
        setGraph(g);
        setError(null);
      })
      .catch((e) => e.name !== 'AbortError' && setError(e.message));
    const timer = t.replay ? 0 : setTimeout(() => setReload((r) => r + 1), 10000);
    return () => {
      ac.abort();
      clearTimeout(timer);
    };
  }, [timeKey(t), view, reload]);
  const col = columns.find((c) => c.key === sortKey);
  const rows = graph ? (graph.nodes || []).filter((n) => n.kind !== 'user').slice() : [];
  rows.sort((a, b) => {
    const x = col.get(a), y = col.get(b);
    const c = x < y ? -1 : x > y ? 1 : (a.id < b.id ? -1 : 1);
    return dir === 'asc' ? c : -c;
  });
  const sortBy = (k) => setQuery({ sort: k, dir: k === sortKey ? (dir === 'asc' ? 'desc' : 'asc') : null });
  return html`<section class="page services" aria-labelledby="svc-h">
    <div class="page-head"><h1 id="svc-h">Services</h1>
      <form class="toolbar" onSubmit=${(e) => e.preventDefault()}>
        <${TimeControls} t=${t} />
        <label>View <select value=${view} onChange=${(e) => setQuery({ view: e.target.value === 'service' ? null : e.target.value })}>
          <option value="service">services</option><option value="version">versions</option></select></label>
        <span class="muted" data-testid="services-asof">${graph ? (t.replay ? `replay: ${fmtSpan(t.secs)} up to ${fmtTime(graph.at)}` : `as of ${fmtTime(graph.at)}, refreshed every 10 s`) : ''}</span>
      </form></div>
    ${graph ? html`<${CoverageNote} covered=${graph.covered_seconds} secs=${t.secs} />` : ''}
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    ${!graph && !error ? html`<p class="muted">Loading…</p>` : ''}
    ${graph ? html`<div class="table-wrap"><table class="data sortable" data-testid="services-table">
      <caption class="sr-only">Golden signals per service over ${fmtSpan(t.secs)}; column headers sort.</caption>
      <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.num ? 'num' : ''} aria-sort=${c.key === sortKey ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'}>
        <button type="button" class="sort" onClick=${() => sortBy(c.key)}>${c.label}${c.key === sortKey ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}</button></th>`)}
        <th scope="col">Details</th></tr></thead>
      <tbody>${rows.map((n) => html`<tr key=${n.id} data-service=${n.id} data-sort-value=${col.get(n)}>
        <th scope="row">${n.id}</th><td><${HealthBadge} h=${n.health} /></td><td>${n.kind}</td><td>${n.mode}</td>
        <td class="num">${n.kind === 'external' || n.kind === 'database' || n.rps ? fmtPct(1 - (n.error_rate || 0)) : '–'}</td>
        <td class="num">${fmtRate(n.rps)}</td><td class="num">${fmtMs(n.p50_ms)}</td><td class="num">${fmtMs(n.p95_ms)}</td><td class="num">${fmtMs(n.p99_ms)}</td>
        <td><a href=${'/topology?' + new URLSearchParams({ ...timeQuery(query), sel: 'node:' + n.id, ...(view === 'version' ? { view } : {}) })} onClick=${onLinkClick}>graph</a>
          · <a href=${'/traces?service=' + encodeURIComponent(n.service || n.id)} onClick=${onLinkClick}>traces</a></td></tr>`)}</tbody>
    </table></div>` : ''}
  </section>`;
}

// timeQuery keeps the time state of the URL for links to other pages.
function timeQuery(q) {
  const o = {};
  for (const k of ['window', 'at', 'from', 'to']) if (q.get(k)) o[k] = q.get(k);
  return o;
}
